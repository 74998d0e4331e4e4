"""Attacks on sync, against a real node of a 4-process devnet that restarts: a peer claiming
a tip it never serves, and peers serving corrupt blocks and certificates. The restarted
node joins, ends on the honest chain, and the attackers end banned; the network keeps
committing meanwhile (at node 0, against a quiet window of the same test).
"""

from __future__ import annotations

import shutil
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from _helpers import DEADLINE, stop_cleanly, tip, until
from attack import (
    FRACTION,
    RSS_CEILING,
    attacking,
    banned,
    join,
    metric,
    read_frame,
    rss,
    send_all,
    status,
    window,
)

from echorand.tools.devnet import Devnet
from echorand.wire.messages import (
    Block,
    Certificate,
    GcProposal,
    SyncRequest,
    SyncResponse,
    Transaction,
    decode,
    frame,
)

NODES = 4
ACCOUNTS = 40
SEED = "test-attack-sync"
R = NODES - 1
"""The node that restarts and syncs."""


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(
        tmp_path_factory.mktemp("attack-sync"),
        nodes=NODES,
        accounts=ACCOUNTS,
        seed=SEED,
        network={"sync_timeout": 2.0},
    )
    net.create()
    with net:
        net.start()
        net.wait_ready(DEADLINE)
        until(lambda: tip(net, 0) >= 20, "some blocks", net)
        yield net
        forks, compared = net.forks()
        assert forks == 0 and compared > 0
        stop_cleanly(net)


def restart_under(
    devnet: Devnet,
    run: Callable[[threading.Event, dict], None],
    fresh: bool,
    banned_hosts: list[str],
) -> dict:
    """Restart node R (from an empty ledger when `fresh`) while `run` attacks it; wait until
    it has joined and caught up, and until it has banned every one of `banned_hosts`.
    Checks that the network kept committing meanwhile."""
    quiet = window(devnet, 0)
    assert devnet.kill(R, signal.SIGTERM) == 0
    if fresh:
        shutil.rmtree(devnet.directory / f"node-{R}" / "data")
    with attacking(run) as attack:
        devnet.start_node(R)
        hot = window(devnet, 0)
        # None while its API is not up yet (attack.status would fail on that at once)
        until(lambda: (devnet.status(R) or {}).get("sync", {}).get("joined"), "joining", devnet)
        target = tip(devnet, 0)
        until(lambda: tip(devnet, R) >= target, f"node {R} at round {target}", devnet)
        for host in banned_hosts:
            until(lambda h=host: banned(devnet, R, h), f"the ban of {host}", devnet)
        assert rss(devnet, R) < RSS_CEILING
    assert hot.blocks >= max(2, FRACTION * quiet.blocks), (hot.blocks, quiet.blocks)
    return attack.notes


def dial_when_up(devnet: Devnet, source: str, claim: int) -> socket.socket:
    """Join node R as soon as it listens, claiming tip `claim`."""
    deadline = DEADLINE
    while True:
        try:
            return join(devnet, R, source, tip=claim)
        except OSError:
            deadline -= 0.02
            if deadline <= 0:
                raise
            threading.Event().wait(0.02)


def test_a_false_tip_claim_does_not_keep_a_node_from_joining_and_syncing(devnet: Devnet) -> None:
    source = "127.0.0.31"
    claim = 1 << 62

    def liar(stop: threading.Event, notes: dict) -> None:
        sock = dial_when_up(devnet, source, claim)
        # A message of a far round too: the node reports it as a tip claim.
        sock.sendall(frame(GcProposal(claim + 1, 2, 0, bytes(32), 0, bytes(64))))
        asked = 0
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                data = read_frame(sock)
            except TimeoutError:
                continue
            except OSError:
                notes["closed"] = True
                break
            asked += isinstance(decode(data), SyncRequest)  # never answered
            notes["asked"] = asked
        stop.wait()

    notes = restart_under(devnet, liar, fresh=False, banned_hosts=[source])
    assert notes.get("closed") and notes["asked"] >= 2
    assert metric(devnet, R, "peer_penalties_total", "sync_timeout") >= 2
    assert status(devnet, R)["sync"]["joined"]


def _forge_vote(cert: Certificate) -> Certificate:
    (signer, sig), *rest = cert.votes
    forged = bytes([sig[0] ^ 1]) + sig[1:]
    return Certificate(
        cert.round, cert.step, cert.b, cert.block_hash, cert.leader, [(signer, forged), *rest]
    )


def _other_block(block: Block) -> Block:
    """The block with one byte of its producer signature changed (or, for the empty block,
    a proposed block in its place)."""
    if block.is_empty:
        return Block(block.round, block.prev_hash, 0, bytes(64), [], bytes(64))
    assert block.signature is not None and block.seed_sig is not None
    sig = bytes([block.signature[0] ^ 1]) + block.signature[1:]
    return Block(
        block.round,
        block.prev_hash,
        block.producer,
        block.seed_sig,
        list(block.transactions),
        sig,
        prev_cert=block.prev_cert,
    )


def _extra_transaction(block: Block) -> Block:
    """The block with one more transaction: its hash is no longer the certified one."""
    if block.is_empty:
        return _other_block(block)
    tx = Transaction(0, bytes(32), bytes(32), 1, 1, 0, bytes(64))
    assert block.signature is not None and block.seed_sig is not None
    return Block(
        block.round,
        block.prev_hash,
        block.producer,
        block.seed_sig,
        [*block.transactions, tx],
        block.signature,
        prev_cert=block.prev_cert,
    )


CORRUPTIONS: dict[
    str, Callable[[list[tuple[Block, Certificate]]], list[tuple[Block, Certificate]]]
] = {
    "forged vote": lambda pairs: [(pairs[0][0], _forge_vote(pairs[0][1])), *pairs[1:]],
    "bad block signature": lambda pairs: [(_other_block(pairs[0][0]), pairs[0][1]), *pairs[1:]],
    "block not certified": lambda pairs: [
        (_extra_transaction(pairs[0][0]), pairs[0][1]),
        *pairs[1:],
    ],
    "certificate of another round": lambda pairs: [(pairs[0][0], pairs[-1][1])],
}


def _real(
    sock: socket.socket, first: int, stop: threading.Event
) -> list[tuple[Block, Certificate]]:
    """At least two real certified blocks from round `first` on (waiting for the network to
    make them when `first` is past its tip), asked of an honest node on `sock`."""
    for _ in range(100):
        sock.sendall(frame(SyncRequest(first, 8)))
        while not isinstance(response := decode(read_frame(sock)), SyncResponse):
            pass
        if len(response.blocks) >= 2 or stop.wait(0.1):
            return list(response.blocks)
    return []


def test_a_sync_from_peers_serving_corrupt_blocks_and_certificates(devnet: Devnet) -> None:
    sources = {case: f"127.0.0.{40 + i}" for i, case in enumerate(CORRUPTIONS)}
    before = {
        r: metric(devnet, R, "peer_drops_total", r)
        for r in ("bad_certificate", "bad_sync_response")
    }

    def corrupt(case: str, stop: threading.Event, notes: dict) -> None:
        source = sources[case]
        real = join(devnet, 0, source)  # where the real blocks come from
        sock = dial_when_up(devnet, source, tip(devnet, 0) + 1000)
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                msg = decode(read_frame(sock))
            except TimeoutError:
                continue
            except OSError:
                notes[case] = "closed"
                return
            if not isinstance(msg, SyncRequest):
                continue
            pairs = _real(real, msg.from_round, stop)
            if not pairs:
                continue
            if not send_all(sock, frame(SyncResponse(CORRUPTIONS[case](pairs)))):
                notes[case] = "closed"
                return

    def run(stop: threading.Event, notes: dict) -> None:
        threads = [
            threading.Thread(target=corrupt, args=(case, stop, notes), daemon=True)
            for case in CORRUPTIONS
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    restart_under(devnet, run, fresh=True, banned_hosts=list(sources.values()))
    certificate = (
        metric(devnet, R, "peer_drops_total", "bad_certificate") - before["bad_certificate"]
    )
    shape = metric(devnet, R, "peer_drops_total", "bad_sync_response") - before["bad_sync_response"]
    assert certificate >= 3 and shape >= 1
    # The restarted node is on the honest chain.
    common = min(tip(devnet, 0), tip(devnet, R))
    assert devnet.hashes(R, 1, common) == devnet.hashes(0, 1, common)
