"""Attacks on a real node of a 4-process devnet: the network keeps committing, the node's
memory stays under its ceiling, and the attacker ends disconnected or banned.

Each test measures, at the attacked node, the blocks committed in a quiet window and in an
equal window under attack (`attack.window`): "keeps committing" is at least FRACTION of
the quiet window's blocks. Each attacker connects from its own 127.0.0.x, so that the ban
of one spares the others and the devnet's nodes (127.0.0.1).
"""

from __future__ import annotations

import os
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from _helpers import DEADLINE, stop_cleanly, tip, until
from attack import (
    FRACTION,
    RSS_CEILING,
    attacking,
    banned,
    closed_by_peer,
    connect,
    drain,
    frames,
    handshake,
    join,
    metric,
    peer_keys,
    read_frame,
    send_all,
    their_hello,
    window,
)

from echorand.tools.devnet import Devnet, sign_transfers
from echorand.wire.messages import (
    MAX_BLOCK_TXS,
    Block,
    GcBlock,
    GcProposal,
    HelloProof,
    SyncRequest,
    Transaction,
    TxBatch,
    decode,
    frame,
)

NODES = 4
ACCOUNTS = 40
SEED = "test-attack"
K = 1
"""The attacked node."""


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("attack"), nodes=NODES, accounts=ACCOUNTS, seed=SEED)
    net.create()
    with net:
        net.start()
        net.wait_ready(DEADLINE)
        until(lambda: tip(net, K) >= 3, "a few blocks", net)
        yield net
        forks, compared = net.forks()
        assert forks == 0 and compared > 0
        stop_cleanly(net)


def check_keeps_committing(devnet: Devnet, quiet: int, attacked: int) -> None:
    assert attacked >= max(2, FRACTION * quiet), f"{attacked} blocks under attack, {quiet} quiet"


def under_attack(
    devnet: Devnet, run: Callable[[threading.Event, dict], None]
) -> tuple[int, int, dict]:
    """(quiet blocks, blocks under attack, the attacker's notes); RSS checked."""
    quiet = window(devnet, K)
    with attacking(run) as attack:
        hot = window(devnet, K)
        assert hot.peak_rss < RSS_CEILING, f"RSS {hot.peak_rss >> 20} MiB"
    check_keeps_committing(devnet, quiet.blocks, hot.blocks)
    print(
        f"blocks {quiet.blocks} quiet, {hot.blocks} attacked; RSS {quiet.peak_rss >> 20} MiB"
        f" quiet, {hot.peak_rss >> 20} MiB attacked"
    )
    return quiet.blocks, hot.blocks, attack.notes


def current_round(devnet: Devnet) -> int:
    return tip(devnet, K) + 1


def test_a_replayed_hello_of_every_peer_is_refused_and_nothing_is_eclipsed(
    devnet: Devnet,
) -> None:
    honest = {devnet.node_key(j).public_key.hex() for j in range(NODES) if j != K}
    until(lambda: peer_keys(devnet, K) == honest, "node 1's three peers", devnet)
    before = metric(devnet, K, "peer_drops_total", "bad_proof")
    sources = [f"127.0.0.{21 + i}" for i in range(NODES - 1)]

    def replay(stop: threading.Event, notes: dict) -> None:
        closed = 0
        for source, j in zip(sources, [j for j in range(NODES) if j != K], strict=True):
            # Learn peer j's Hello (it speaks first) and a proof of it (for our nonce).
            to_peer = connect(devnet, j, source)
            shake = handshake(devnet)
            to_peer.sendall(frame(shake.hello()))
            theirs = their_hello(to_peer)
            proof = decode(read_frame(to_peer))
            assert isinstance(proof, HelloProof)
            to_peer.close()
            # Replay both to node 1, in peer j's name.
            victim = connect(devnet, K, source)
            victim.sendall(frame(theirs) + frame(proof))
            closed += closed_by_peer(victim)
            victim.close()
        notes["closed"] = closed
        stop.wait()

    _, _, notes = under_attack(devnet, replay)
    assert notes["closed"] == NODES - 1
    assert metric(devnet, K, "peer_drops_total", "bad_proof") == before + NODES - 1
    assert all(banned(devnet, K, s) for s in sources)
    assert peer_keys(devnet, K) == honest  # the real links were never replaced


def _forged(count: int, devnet: Devnet) -> list[Transaction]:
    out = []
    for raw in sign_transfers(SEED, ACCOUNTS, count, devnet.genesis_hash):
        tx = Transaction.from_bytes(raw)
        sig = bytes([tx.signature[0] ^ 1]) + tx.signature[1:]
        out.append(Transaction(tx.kind, tx.sender, tx.recipient, tx.amount, tx.fee, tx.nonce, sig))
    return out


def test_a_flood_of_transactions_with_bad_signatures(devnet: Devnet) -> None:
    forged = _forged(10_000, devnet)
    batch = frame(TxBatch(forged))
    source = "127.0.0.12"

    def flood(stop: threading.Event, notes: dict) -> None:
        sock = join(devnet, K, source)
        sent = 0
        while not stop.is_set() and send_all(sock, batch):
            sent += 1
        notes["sent"] = sent
        notes["closed"] = drain(sock, stop)
        sock.close()

    _, _, notes = under_attack(devnet, flood)
    assert notes["closed"]
    assert banned(devnet, K, source)
    assert metric(devnet, K, "peer_penalties_total", "bad transaction signature") >= 1
    assert metric(devnet, K, "mempool_transactions") < 20_000


def _next_gc_block(sock: socket.socket, after: int) -> GcBlock:
    """Read the node's gossip until a gc_block of a round after `after`."""
    while True:
        msg = decode(read_frame(sock))
        if isinstance(msg, GcBlock) and msg.round > after:
            return msg


def test_a_flood_of_gc_blocks_with_copied_certificates_and_bad_signatures(
    devnet: Devnet,
) -> None:
    source = "127.0.0.13"

    def flood(stop: threading.Event, notes: dict) -> None:
        sock = join(devnet, K, source)
        sent, last = 0, 0
        try:
            while not stop.is_set():
                real = _next_gc_block(sock, last)
                last = real.round
                # The real block and the CERT_{r-1} it carries, under a forged signature.
                copies = [
                    GcBlock(real.round, 1, real.sender, real.block, os.urandom(64))
                    for _ in range(20)
                ]
                if not send_all(sock, frames(*copies)):
                    break
                sent += len(copies)
        except (ConnectionError, OSError):
            pass
        notes["sent"] = sent
        notes["closed"] = drain(sock, stop) if sent else True
        sock.close()

    _, _, notes = under_attack(devnet, flood)
    assert notes["sent"] > 0 and notes["closed"]
    assert banned(devnet, K, source)
    assert metric(devnet, K, "consensus_messages_total", "bad signature") >= 1


def test_future_round_and_oversized_frames(devnet: Devnet) -> None:
    source = "127.0.0.14"
    txs = [Transaction(0, bytes(32), bytes(32), 1, 1, n, bytes(64)) for n in range(MAX_BLOCK_TXS)]

    def flood(stop: threading.Event, notes: dict) -> None:
        sock = join(devnet, K, source)
        sent = 0
        for i in range(4):
            # A block of 100 000 transactions (15 MB) for a round ahead, held or dropped.
            r = current_round(devnet)
            big = Block(r + 2, bytes(32), 0, bytes(64), txs, bytes(64))
            if not send_all(sock, frame(GcBlock(r + 2, 1, i, big, bytes(64)))):
                break
            sent += 1
        notes["big"] = sent
        # Messages of the next rounds and of a far one, then a length over the frame limit.
        r = current_round(devnet)
        ahead = [
            GcProposal(r + d, 2, s, os.urandom(32), s, bytes(64))
            for d in (1, 2, 1000)
            for s in range(ACCOUNTS)
        ]
        send_all(sock, frames(*ahead) + b"\xff\xff\xff\xf0" + bytes(100))
        notes["closed"] = drain(sock, stop)
        sock.close()

    _, _, notes = under_attack(devnet, flood)
    assert notes["big"] >= 1 and notes["closed"]
    assert banned(devnet, K, source)
    assert metric(devnet, K, "held_bytes") <= 64 << 20


def test_a_thousand_idle_connections_from_one_address(devnet: Devnet) -> None:
    source = "127.0.0.15"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    honest = peer_keys(devnet, K)
    before = metric(devnet, K, "peer_drops_total", "address_limit")

    def idle(stop: threading.Event, notes: dict) -> None:
        socks = []
        for _ in range(1000):
            s = socket.socket()
            s.bind((source, 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", devnet.p2p_ports[K]))
            socks.append(s)
        # Wait for the node to close every one (at once, or at the hello deadline). One the
        # kernel dropped from a full accept queue is half-open: a byte makes it reset.
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        open_ = set(socks)
        start = time.monotonic()
        poked = False
        most = 0
        while open_ and time.monotonic() < start + 60:
            most = max(most, metric(devnet, K, "net_connections"))
            for key, _ in sel.select(0.5):
                s = key.fileobj
                try:
                    data = s.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    open_.discard(s)
            if not poked and time.monotonic() > start + 8:
                poked = True
                for s in open_:
                    send_all(s, b"x")
        notes["still_open"] = len(open_)
        notes["most"] = most
        for s in socks:
            s.close()
        stop.wait()

    _, _, notes = under_attack(devnet, idle)
    assert notes["still_open"] == 0
    assert notes["most"] <= len(honest) + 8  # max_per_address
    assert metric(devnet, K, "peer_drops_total", "address_limit") - before >= 500
    assert peer_keys(devnet, K) == honest


def test_a_sync_request_flood(devnet: Devnet) -> None:
    source = "127.0.0.16"

    def flood(stop: threading.Event, notes: dict) -> None:
        sock = join(devnet, K, source)
        requests = frame(SyncRequest(1, 256)) * 1000
        sent = 0
        while not stop.is_set() and send_all(sock, requests):
            sent += 1000
        notes["closed"] = drain(sock, stop)
        sock.close()

    _, _, notes = under_attack(devnet, flood)
    assert notes["closed"]
    assert banned(devnet, K, source)
    assert metric(devnet, K, "peer_penalties_total", "sync_flood") >= 10


def test_garbage_and_huge_length_prefixes(devnet: Devnet) -> None:
    sources = ["127.0.0.17", "127.0.0.18", "127.0.0.19"]

    def garbage(stop: threading.Event, notes: dict) -> None:
        closed = 0
        # Garbage instead of a hello.
        s = connect(devnet, K, sources[0])
        s.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256)))
        closed += closed_by_peer(s)
        # A proven peer, then a length prefix far over the frame limit.
        s = join(devnet, K, sources[1])
        s.sendall(b"\xff\xff\xff\xf0" + b"x" * 100)
        closed += closed_by_peer(s)
        # A first frame of a hello's length with garbage inside (no message type).
        s = connect(devnet, K, sources[2])
        s.sendall((111).to_bytes(4, "big") + b"\x99" + os.urandom(110))
        closed += closed_by_peer(s)
        notes["closed"] = closed
        stop.wait()

    _, _, notes = under_attack(devnet, garbage)
    assert notes["closed"] == 3
    assert all(banned(devnet, K, s) for s in sources)
    for reason in ("bad_hello", "bad_frame"):
        assert metric(devnet, K, "peer_drops_total", reason) >= 1
