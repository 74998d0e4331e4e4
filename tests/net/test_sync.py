"""Sync over loopback: certified blocks fetched from peers, checked, applied; bad peers dropped.

The chain is real: blocks signed by their producers, certificates of votes by a fixed
validator set (PyNaCl keys). The test ledger's `check_and_apply` stands in for the
node's: it checks the link to the tip, the certified value, a two-thirds quorum and
every signature, so a corrupted certificate is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import pytest
from nacl.signing import SigningKey
from nethelp import (
    GENESIS,
    HOSTILE_HOST,
    arun,
    config,
    framed,
    handshake,
    raw_peer,
    read_until_closed,
    send,
    shake,
    until,
)

from echorand.net.network import Network
from echorand.net.sync import (
    MAX_ASKS,
    ForkSuspected,
    Syncer,
    answer,
    answered_blocks,
    shape_problem,
)
from echorand.wire.crypto import verify, verify_batch
from echorand.wire.messages import (
    MAX_SYNC_BLOCKS,
    NO_LEADER,
    Block,
    Certificate,
    FinalProof,
    Hello,
    SyncRequest,
    SyncResponse,
    Transaction,
    decode,
    split_frames,
)

VALIDATORS = [SigningKey(bytes([i + 1]) * 32) for i in range(7)]
CertifiedBlock = tuple[Block, Certificate]


def _certify(round: int, b: int, block_hash: bytes, leader: int) -> Certificate:
    step = 4 + b  # the first step whose votes decide for b
    body = Certificate(round, step, b, block_hash, leader, []).vote_signing_bytes(GENESIS)
    votes = [(i, sk.sign(body).signature) for i, sk in enumerate(VALIDATORS) if i != 3]
    return Certificate(round, step, b, block_hash, leader, votes)


def _block(round: int, prev: bytes) -> Block:
    if round % 5 == 0:
        return Block.empty(round, prev)
    producer = round % len(VALIDATORS)
    sk = VALIDATORS[producer]
    sender = sk.verify_key.encode()
    txs = [Transaction(0, sender, bytes(32), round, 1, n, bytes(64)) for n in range(3)]
    seed_sig = sk.sign(round.to_bytes(8, "big") + prev).signature
    unsigned = Block(round, prev, producer, seed_sig, txs, bytes(64))
    signature = sk.sign(unsigned.signing_bytes(GENESIS)).signature
    return Block(round, prev, producer, seed_sig, txs, signature)


def make_chain(n: int) -> list[CertifiedBlock]:
    chain: list[CertifiedBlock] = []
    prev = GENESIS
    for r in range(1, n + 1):
        block = _block(r, prev)
        if block.is_empty:
            cert = _certify(r, 1, block.hash, NO_LEADER)
        else:
            assert block.producer is not None
            cert = _certify(r, 0, block.hash, block.producer)
        chain.append((block, cert))
        prev = block.hash
    return chain


CHAIN = make_chain(300)


def _verifies(key: SigningKey, body: bytes, signature: bytes) -> bool:
    return verify(key.verify_key.encode(), body, signature)


class Ledger:
    """An in-memory chain: the BlockSource of a server, the check_and_apply of a client."""

    def __init__(self, blocks: Sequence[CertifiedBlock] = ()) -> None:
        self.blocks = list(blocks)

    def tip(self) -> int:
        return len(self.blocks)

    def blocks_range(self, from_round: int, count: int) -> list[CertifiedBlock]:
        return self.blocks[from_round - 1 : from_round - 1 + count]

    def encoded_blocks(
        self, from_round: int, count: int, max_bytes: int | None = None
    ) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        total = 0
        for block, cert in self.blocks_range(from_round, count):
            pair = (block.encode(), cert.encode())
            total += len(pair[0]) + len(pair[1])
            if out and max_bytes is not None and total > max_bytes:
                break
            out.append(pair)
        return out

    def final_proof(self, first: int, last: int) -> bytes | None:
        return None  # no final blocks in these chains

    def check_and_apply(self, block: Block, cert: Certificate) -> bool:
        prev = self.blocks[-1][0].hash if self.blocks else GENESIS
        if block.round != self.tip() + 1 or block.prev_hash != prev or cert.round != block.round:
            return False
        if block.is_empty:
            value_ok = cert.b == 1 and cert.value == (block.hash, NO_LEADER)
        else:
            assert block.producer is not None and block.signature is not None
            producer = VALIDATORS[block.producer]
            value_ok = cert.b == 0 and cert.value == (block.hash, block.producer)
            signed = block.signing_bytes(GENESIS)
            value_ok = value_ok and _verifies(producer, signed, block.signature)
        body = cert.vote_signing_bytes(GENESIS)
        quorum = 3 * len(cert.votes) > 2 * len(VALIDATORS)
        votes_ok = all(s < len(VALIDATORS) for s, _ in cert.votes) and all(
            verify_batch(
                [VALIDATORS[s].verify_key.encode() for s, _ in cert.votes],
                [body] * len(cert.votes),
                [sig for _, sig in cert.votes],
            )
        )
        if not (value_ok and quorum and votes_ok):
            return False
        self.blocks.append((block, cert))
        return True


class Corrupt(Ledger):
    """A peer that serves certificates with a forged vote from round `bad_from` on."""

    def __init__(self, blocks: Sequence[CertifiedBlock], bad_from: int) -> None:
        super().__init__(blocks)
        self.bad_from = bad_from

    def blocks_range(self, from_round: int, count: int) -> list[CertifiedBlock]:
        out = []
        for block, cert in super().blocks_range(from_round, count):
            if block.round >= self.bad_from:
                (signer, sig), *rest = cert.votes
                forged = bytes([sig[0] ^ 1]) + sig[1:]
                cert = Certificate(
                    cert.round, cert.step, cert.b, cert.block_hash, cert.leader,
                    [(signer, forged), *rest],
                )  # fmt: skip
            out.append((block, cert))
        return out


class Client:
    """A syncing node: its ledger, network, syncer, and what the syncer told it."""

    def __init__(self, i: int, blocks: Sequence[CertifiedBlock] = (), **options: float) -> None:
        self.ledger = Ledger(blocks)
        self.net = Network(config(i), source=self.ledger)
        self.caught_up: list[int] = []
        self.behind: list[int] = []
        self.syncer = Syncer(
            self.net,
            self.ledger.check_and_apply,
            tip=self.ledger.tip,
            on_caught_up=self.caught_up.append,
            on_behind=self.behind.append,
            **options,  # type: ignore[arg-type]
        )

    async def __aenter__(self) -> Client:
        await self.net.start()
        self.syncer.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.syncer.close()
        await self.net.close()


def test_a_new_node_syncs_from_a_good_peer_after_dropping_a_bad_one() -> None:
    async def main() -> None:
        async with (
            Network(config(1), source=Ledger(CHAIN)) as good,
            Network(config(2, host=HOSTILE_HOST), source=Corrupt(CHAIN, bad_from=150)) as bad,
            Client(3, batch=100) as client,
        ):
            client.net.connect(HOSTILE_HOST, bad.port)
            await until(lambda: client.net.counters["drop_bad_certificate"] >= 1, "a bad cert")
            assert client.ledger.tip() == 149  # what it applied before the forgery stays
            assert client.caught_up == []
            client.net.connect("127.0.0.1", good.port)
            await until(lambda: client.caught_up, "the client to catch up")
            assert client.caught_up == [300]
            assert client.ledger.blocks == CHAIN
            assert client.syncer.applied == 300 and not client.syncer.behind

    arun(main())


def test_peers_are_asked_in_turn() -> None:
    async def main() -> None:
        async with (
            Network(config(1), source=Ledger(CHAIN)) as p1,
            Network(config(2), source=Ledger(CHAIN)) as p2,
            Client(3, batch=10) as client,
        ):
            for p in (p1, p2):
                client.net.connect("127.0.0.1", p.port)
            await until(lambda: client.caught_up, "the client to catch up")
            assert client.ledger.blocks == CHAIN
            served = [p.counters["sync_requests_served"] for p in (p1, p2)]
            assert sum(served) >= 30 and min(served) >= 1

    arun(main())


def test_a_node_that_falls_behind_syncs_again() -> None:
    async def main() -> None:
        server_ledger = Ledger(CHAIN[:100])
        async with (
            Network(config(1), source=server_ledger) as server,
            Client(2) as client,
        ):
            client.net.connect("127.0.0.1", server.port)
            await until(lambda: client.caught_up, "the first catch-up")
            assert client.caught_up == [100] and client.ledger.tip() == 100
            server_ledger.blocks = list(CHAIN)  # the network moved on
            client.syncer.note_tip(client.net.peers[0], 300)  # a message of round 301
            await until(lambda: len(client.caught_up) == 2, "the second catch-up")
            assert client.behind == [300] and client.caught_up == [100, 300]
            assert client.ledger.blocks == CHAIN

    arun(main())


def make_fork(base: Sequence[CertifiedBlock], fork: int, n: int) -> list[CertifiedBlock]:
    """`base` up to round fork - 1, then an empty block at `fork` (base holds a proposed
    block there) and `n - fork` blocks on it: another chain from round `fork`."""
    chain = list(base[: fork - 1])
    prev = chain[-1][0].hash
    for r in range(fork, n + 1):
        block = Block.empty(r, prev) if r == fork else _block(r, prev)
        value = (block.hash, NO_LEADER if block.is_empty else block.producer)
        chain.append((block, _certify(r, int(block.is_empty), *value)))
        prev = block.hash
    return chain


class ForkAware(Ledger):
    """A client ledger that says ForkSuspected, as the node does, for a block of the next
    round that does not extend its tip; and records the chains the syncer compares."""

    def __init__(self, blocks: Sequence[CertifiedBlock]) -> None:
        super().__init__(blocks)
        self.compared: list[list[CertifiedBlock]] = []

    def check_and_apply(self, block: Block, cert: Certificate) -> bool:
        if block.round == self.tip() + 1 and block.prev_hash != self.blocks[-1][0].hash:
            raise ForkSuspected(block.round)
        return super().check_and_apply(block, cert)

    def on_fork(self, _peer: object, blocks: list[CertifiedBlock]) -> bool:
        self.compared.append(blocks)
        return False  # keeps its own chain


def test_a_node_behind_a_peer_on_another_chain_compares_that_chain() -> None:
    assert not CHAIN[10][0].is_empty
    ours = make_fork(CHAIN, 11, 15)  # forked at round 11, five rounds behind the peer

    async def main() -> None:
        ledger = ForkAware(ours)
        syncer_options = {"on_fork": ledger.on_fork, "fork_start": lambda: 5}
        async with Network(config(1), source=Ledger(CHAIN[:20])) as server:
            net = Network(config(2), source=ledger)
            syncer = Syncer(net, ledger.check_and_apply, tip=ledger.tip, **syncer_options)
            await net.start()
            syncer.start()
            try:
                net.connect("127.0.0.1", server.port)
                await until(lambda: ledger.compared, "the fork check", timeout=20.0)
            finally:
                await syncer.close()
                await net.close()
        # its chain from the first round it could roll back, as the peer holds it
        assert ledger.compared[0] == CHAIN[4:20]
        assert ledger.blocks == ours and net.counters["drop_bad_certificate"] == 0

    arun(main())


def test_an_error_of_the_node_in_the_sync_loop_is_reported_not_swallowed() -> None:
    """The fork choice fails (a full disk while switching chains, in a chaos run): the
    sync loop ends, and says so to the node (`on_error`), which stops. It used to end
    silently, and the restarted node, not caught up, waited for it for ever."""
    ours = make_fork(CHAIN, 11, 15)
    errors: list[Exception] = []

    def failing_fork(_peer: object, _blocks: object) -> bool:
        raise OSError("no room on the disk")

    async def main() -> None:
        ledger = ForkAware(ours)
        async with Network(config(1), source=Ledger(CHAIN[:20])) as server:
            net = Network(config(2), source=ledger)
            syncer = Syncer(
                net,
                ledger.check_and_apply,
                tip=ledger.tip,
                on_fork=failing_fork,
                fork_start=lambda: 5,
                on_error=errors.append,
            )
            await net.start()
            syncer.start()
            try:
                net.connect("127.0.0.1", server.port)
                await until(lambda: errors, "the error, reported")
            finally:
                await syncer.close()
                await net.close()
        assert [str(e) for e in errors] == ["no room on the disk"]

    arun(main())


def test_a_failure_of_the_node_while_applying_is_not_blamed_on_the_peer() -> None:
    """`check_and_apply` fails for the node's own reason (a full disk: an OSError here):
    the peer is neither dropped nor charged, and the loop reports the error."""
    errors: list[Exception] = []

    def full_disk(_block: Block, _cert: Certificate) -> bool:
        raise OSError("no room on the disk")

    async def main() -> None:
        async with Network(config(1), source=Ledger(CHAIN[:20])) as server:
            net = Network(config(2), source=Ledger())
            syncer = Syncer(net, full_disk, tip=lambda: 0, on_error=errors.append)
            await net.start()
            syncer.start()
            try:
                net.connect("127.0.0.1", server.port)
                await until(lambda: errors, "the error, reported")
                assert len(net.peers) == 1 and net.counters["drop_bad_certificate"] == 0
                assert net.banned("127.0.0.1") == 0
            finally:
                await syncer.close()
                await net.close()
        assert [str(e) for e in errors] == ["no room on the disk"]

    arun(main())


def test_a_peer_suspected_again_after_the_interval_is_compared_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fork can appear after a first comparison with a peer (a chaos run, seed 42: a
    node on a slow link committed a tentative block its peers never saw, after it had
    compared chains with each of them): each suspicion after FORK_CHECK_INTERVAL compares
    again. A second suspicion used to be ignored for as long as the connection lasted."""
    monkeypatch.setattr("echorand.net.sync.FORK_CHECK_INTERVAL", 0.2)
    ours = make_fork(CHAIN, 11, 15)

    async def main() -> None:
        ledger = ForkAware(ours)
        async with Network(config(1), source=Ledger(CHAIN[:20])) as server:
            net = Network(config(2), source=ledger)
            syncer = Syncer(
                net, ledger.check_and_apply, tip=ledger.tip, on_fork=ledger.on_fork,
                fork_start=lambda: 5,
            )  # fmt: skip
            await net.start()
            syncer.start()
            try:
                net.connect("127.0.0.1", server.port)
                await until(lambda: ledger.compared, "the first fork check", timeout=20.0)
                await asyncio.sleep(0.3)
                (peer,) = net.peers
                syncer.suspect_fork(peer)  # e.g. a producer of our round on another parent
                await until(lambda: len(ledger.compared) == 2, "the second", timeout=20.0)
            finally:
                await syncer.close()
                await net.close()
        assert ledger.compared[0] == ledger.compared[1] == CHAIN[4:20]

    arun(main())


def test_a_fetched_block_that_consensus_applied_meanwhile_is_compared() -> None:
    """The answer to "blocks from round 11" arrives after our consensus committed round 11
    itself, another block than the peer's: a fork to compare, not a block to skip."""
    ours = make_fork(CHAIN, 11, 11)
    ledger = ForkAware(ours[:10])

    async def main() -> None:
        async def late(req: SyncRequest) -> bytes:
            if ledger.tip() == 10:
                ledger.blocks.append(ours[10])  # committed by consensus while we waited
            served = CHAIN[:11]  # the peer's tip is round 11: nothing after it to part on
            return framed(SyncResponse(served[req.from_round - 1 : req.from_round - 1 + req.count]))

        fake = await fake_peer(11, late)
        net = Network(config(2), source=ledger)
        syncer = Syncer(
            net,
            ledger.check_and_apply,
            tip=ledger.tip,
            on_fork=ledger.on_fork,
            fork_start=lambda: 5,
            hash_at=lambda r: ledger.blocks[r - 1][0].hash if 1 <= r <= ledger.tip() else None,
        )
        await net.start()
        syncer.start()
        try:
            net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: ledger.compared, "the fork check", timeout=20.0)
        finally:
            await syncer.close()
            await net.close()
            fake.close()
        assert ledger.compared[0] == CHAIN[4:11] and ledger.blocks == ours[:11]

    arun(main())


class FinalAt(Ledger):
    """A server whose block `final` is final: its proof follows the answers that reach it."""

    def __init__(self, blocks: Sequence[CertifiedBlock], final: int) -> None:
        super().__init__(blocks)
        self.final = final

    def final_proof(self, first: int, last: int) -> bytes | None:
        if not first <= self.final <= last:
            return None
        vote = (1).to_bytes(8, "big") + bytes(64)
        return FinalProof(self.final, self.blocks[self.final - 1][0].hash, vote).encode()


def test_a_sync_answer_that_reaches_a_final_block_is_followed_by_its_proof() -> None:
    async def main() -> None:
        async with (
            Network(config(1), source=FinalAt(CHAIN[:40], final=30)) as server,
            Client(2, batch=16) as client,  # type: ignore[arg-type]
        ):
            client.net.connect("127.0.0.1", server.port)
            await until(lambda: client.caught_up, "the catch-up")
            (peer,) = client.net.peers
            proof = client.syncer.final_of(peer)
            assert proof is not None and proof.round == 30
            assert proof.block_hash == CHAIN[29][0].hash
            assert server.counters["final_proofs_sent"] == 1  # only the answer 17..32 has it

    arun(main())


def test_a_node_at_the_tip_of_its_peers_is_caught_up_at_once() -> None:
    async def main() -> None:
        async with (
            Network(config(1), source=Ledger(CHAIN[:50])) as server,
            Client(2, CHAIN[:50]) as client,
        ):
            client.net.connect("127.0.0.1", server.port)
            await until(lambda: client.caught_up, "the catch-up report")
            assert client.caught_up == [50] and client.syncer.applied == 0

    arun(main())


# -- hostile and broken peers

Reply = Callable[[SyncRequest], Awaitable[bytes | list[bytes | float] | None]]
"""What the fake sends for a request: bytes, or pieces of bytes and pauses (seconds)."""


async def fake_peer(tip: int, reply: Reply, key: int = 9) -> asyncio.Server:
    """A peer made by hand on HOSTILE_HOST: proves its key (`key`, a seed), says its tip is
    `tip` and answers sync requests with `reply`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        shake = handshake(key, tip=tip, outbound=False)
        writer.write(framed(shake.hello()))
        buf = b""
        try:
            while data := await reader.read(1 << 16):
                frames, used = split_frames(buf + data)
                buf = (buf + data)[used:]
                for f in frames:
                    msg = decode(f)
                    if isinstance(msg, Hello):
                        writer.write(framed(shake.proof(msg)))
                    elif isinstance(msg, SyncRequest) and (out := await reply(msg)):
                        for piece in [out] if isinstance(out, bytes) else out:
                            if isinstance(piece, bytes):
                                writer.write(piece)
                            else:
                                await asyncio.sleep(piece)
        except (ConnectionError, asyncio.CancelledError):
            pass
        writer.close()

    return await asyncio.start_server(handle, HOSTILE_HOST, 0)


def _port(server: asyncio.Server) -> int:
    return server.sockets[0].getsockname()[1]


def test_a_silent_peer_is_charged_and_does_not_keep_the_node_from_catching_up() -> None:
    async def silent(_req: SyncRequest) -> None:
        return None

    async def main() -> None:
        fake = await fake_peer(1 << 62, silent)
        async with (
            Network(config(1), source=Ledger(CHAIN)) as good,
            Client(3, timeout=0.5) as client,
        ):
            client.net.connect(HOSTILE_HOST, _port(fake))
            # One timeout: its claim no longer counts, the node is caught up where it is.
            await until(lambda: client.caught_up, "the first catch-up, at round 0")
            assert client.caught_up == [0] and client.net.counters["penalty_sync_timeout"] >= 1
            client.net.connect("127.0.0.1", good.port)
            await until(lambda: client.ledger.tip() == 300, "the catch-up from the good peer")
            assert client.ledger.blocks == CHAIN
            # Asked again after its cool-down and silent again: banned.
            await until(lambda: client.net.counters["bans"] == 1, "the silent peer's ban")
            assert client.net.banned(HOSTILE_HOST) > 0
            assert [p.host for p in client.net.peers] == ["127.0.0.1"]
        fake.close()

    arun(main())


def test_a_peer_that_claims_a_tip_it_does_not_serve_loses_its_claim() -> None:
    async def nothing(_req: SyncRequest) -> bytes:
        return framed(SyncResponse([]))

    async def main() -> None:
        fake = await fake_peer(1 << 62, nothing)
        async with Client(3) as client:
            client.net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: client.caught_up, "the catch-up")
            assert client.caught_up == [0] and client.syncer.target == 0
            assert client.net.counters["penalty_false_tip"] == 1
            assert len(client.net.peers) == 1  # charged, not banned: 60 of 100
        fake.close()

    arun(main())


def test_a_peer_that_hangs_up_on_a_request_is_not_waited_for() -> None:
    asked: list[SyncRequest] = []

    async def main() -> None:
        async def hang_up(req: SyncRequest) -> None:
            asked.append(req)
            raise ConnectionAbortedError  # the fake closes the connection

        fake = await fake_peer(300, hang_up)
        async with (
            Network(config(1), source=Ledger(CHAIN)) as good,
            Client(3, timeout=30) as client,
        ):
            client.net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: len(asked) >= 2, "a request after the first hang-up")
            client.net.connect("127.0.0.1", good.port)
            await until(lambda: client.caught_up, "the catch-up")
            assert client.ledger.blocks == CHAIN and client.net.counters["sync_timeouts"] == 0
        fake.close()

    arun(main())


def _range(req: SyncRequest) -> bytes:
    return framed(SyncResponse(CHAIN[req.from_round - 1 : req.from_round - 1 + req.count]))


def test_a_peer_that_answered_late_once_is_charged_and_kept() -> None:
    asked: list[SyncRequest] = []

    async def late_once(req: SyncRequest) -> bytes:
        asked.append(req)
        if len(asked) == 1:
            await asyncio.sleep(0.75)  # after the timeout, before the next request
        return _range(req)

    async def main() -> None:
        fake = await fake_peer(300, late_once)
        async with Client(3, batch=100, timeout=0.5) as client:
            client.net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: client.ledger.tip() == 300, "the catch-up")
            assert client.ledger.blocks == CHAIN
            assert client.net.counters["sync_timeouts"] == 1
            assert client.net.counters["drop_unsolicited_sync"] == 0
            assert len(client.net.peers) == 1
        fake.close()

    arun(main())


@pytest.mark.parametrize("late", [True, False], ids=["answers late", "never answers"])
def test_a_slow_peer_is_hedged_by_the_next_peer_ahead(late: bool) -> None:
    """A request the first peer leaves unanswered for `hedge` seconds goes to the next peer
    ahead too, and the node catches up from it long before the first one's timeout. The
    slow peer's answer, when it comes, is dropped unread (not an unsolicited response);
    one that never comes is charged at the timeout as any."""
    asked: list[SyncRequest] = []

    async def slow(req: SyncRequest) -> bytes | None:
        asked.append(req)
        await asyncio.sleep(1.0)
        return _range(req) if late else None

    async def main() -> None:
        fake = await fake_peer(300, slow)
        timeout = 30.0 if late else 5.0
        async with (
            Network(config(1), source=Ledger(CHAIN)) as good,
            Client(3, batch=100, timeout=timeout, hedge=0.2) as client,
        ):
            client.net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: asked, "the first request, to the slow peer")
            client.net.connect("127.0.0.1", good.port)
            await until(lambda: client.ledger.tip() == 300, "the catch-up", timeout=timeout / 2)
            assert client.ledger.blocks == CHAIN
            assert client.net.counters["sync_hedges"] >= 1
            assert client.net.counters["sync_timeouts"] == 0
            if late:
                await until(lambda: client.net.counters["sync_hedged_late"] == 1, "the answer")
                assert client.net.counters["drop_unsolicited_sync"] == 0
                assert client.net.counters["penalty_sync_timeout"] == 0
                assert len(client.net.peers) == 2
            else:
                await until(lambda: client.net.counters["sync_timeouts"] == 1, "the timeout")
                assert client.net.counters["penalty_sync_timeout"] == 1
        fake.close()

    arun(main())


def test_hedging_keeps_at_most_max_asks_requests_in_flight() -> None:
    """Four silent peers ahead: a request goes to one, then a hedge to the next each
    `hedge` seconds, but never more than MAX_ASKS are in flight for one fetch."""
    asked: list[int] = []

    def silent(i: int) -> Reply:
        async def reply(_req: SyncRequest) -> None:
            asked.append(i)

        return reply

    async def main() -> None:
        fakes = [await fake_peer(300, silent(i), key=9 + i) for i in range(4)]
        async with Client(3, timeout=30, hedge=0.05) as client:
            for fake in fakes:
                client.net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: len(client.net.peers) == 4, "the four peers")
            await until(lambda: len(asked) >= MAX_ASKS, "the hedges")
            await asyncio.sleep(0.5)  # ten hedge intervals more
            assert len(asked) == MAX_ASKS and len(set(asked)) == MAX_ASKS
            assert client.net.counters["sync_hedges"] == MAX_ASKS - 1
        for fake in fakes:
            fake.close()

    arun(main())


def test_a_peer_whose_answer_is_arriving_at_the_timeout_is_not_charged() -> None:
    """A large answer on a slow link (ours, likely: charging every peer we ask would ban
    them all) is half read at the timeout: the request ends as any timeout, the peer is
    not charged, and the rest, when it comes, is dropped as a late answer."""

    asked: list[SyncRequest] = []

    async def halting(req: SyncRequest) -> list[bytes | float]:
        asked.append(req)
        data = _range(req)
        if len(asked) > 1:
            return [data]
        return [data[: len(data) // 2], 1.0, data[len(data) // 2 :]]

    async def main() -> None:
        fake = await fake_peer(300, halting)
        async with Client(3, batch=100, timeout=0.5) as client:
            client.net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: client.net.counters["sync_slow_answers"] >= 1, "the timeout")
            assert client.net.counters["penalty_sync_timeout"] == 0
            assert client.net.counters["sync_timeouts"] == 0
            await until(lambda: client.ledger.tip() == 300, "the answers after it")
            assert client.net.counters["drop_unsolicited_sync"] == 0
            assert len(client.net.peers) == 1
        fake.close()

    arun(main())


def test_a_peer_that_never_answers_in_time_is_banned() -> None:
    async def late(req: SyncRequest) -> bytes:
        await asyncio.sleep(0.3)
        return _range(req)

    async def main() -> None:
        fake = await fake_peer(300, late)
        async with Client(3, batch=100, timeout=0.1) as client:
            client.net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: client.net.counters["bans"] == 1, "the ban")
            assert client.net.counters["sync_timeouts"] >= 2 and client.net.peers == []
        fake.close()

    arun(main())


def test_a_peer_that_skipped_a_request_is_still_used() -> None:
    asked: list[SyncRequest] = []

    async def skip_first(req: SyncRequest) -> bytes | None:
        asked.append(req)
        return None if len(asked) == 1 else _range(req)

    async def main() -> None:
        fake = await fake_peer(300, skip_first)
        async with Client(3, timeout=0.5) as client:
            client.net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: client.ledger.tip() == 300, "the catch-up")
            assert client.ledger.blocks == CHAIN
            assert client.net.counters["sync_timeouts"] == 1 and len(asked) == 3
        fake.close()

    arun(main())


RESPONSES: dict[str, Callable[[SyncRequest], list[CertifiedBlock]]] = {
    "starts a round late": lambda r: CHAIN[r.from_round : r.from_round + r.count],
    "skips a round": lambda r: [CHAIN[r.from_round - 1], CHAIN[r.from_round + 1]],
    "more than asked": lambda r: CHAIN[r.from_round - 1 : r.from_round + r.count],
    "certificate of another round": lambda r: [
        (CHAIN[r.from_round - 1][0], CHAIN[r.from_round][1])
    ],
}


@pytest.mark.parametrize("case", list(RESPONSES))
def test_a_response_out_of_shape_drops_the_peer(case: str) -> None:
    async def reply(req: SyncRequest) -> bytes:
        return framed(SyncResponse(RESPONSES[case](req)))

    async def main() -> None:
        fake = await fake_peer(300, reply)
        async with Client(3, batch=20) as client:
            client.net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: client.net.counters["drop_bad_sync_response"] >= 1, "the drop")
            assert client.ledger.tip() == 0 and client.net.banned(HOSTILE_HOST) > 0
        fake.close()

    arun(main())


@pytest.mark.parametrize("syncing", [True, False])
def test_an_unsolicited_response_drops_the_peer(syncing: bool) -> None:
    async def main() -> None:
        if syncing:
            client = Client(3)
            net = client.net
            await net.start()
        else:
            net = Network(config(3))
            await net.start()
        try:
            sock = await raw_peer(net)
            await shake(sock, 9)
            await send(sock, framed(SyncResponse(CHAIN[:2])))
            await read_until_closed(sock)
            sock.close()
            assert net.counters["drop_unsolicited_sync"] == 1
        finally:
            await net.close()

    arun(main())


def test_a_peer_asking_while_it_does_not_read_is_not_served() -> None:
    async def main() -> None:
        cfg = config(
            1,
            max_frame=1 << 16,
            out_soft=1 << 16,
            out_hard=1 << 24,
            sync_rate=1e6,
            sync_burst=1000,
        )
        async with Network(cfg, source=Ledger(CHAIN)) as server:
            sock = await raw_peer(server, rcvbuf=4096)
            await shake(sock, 9)
            await send(sock, framed(SyncRequest(1, 256)) * 400)
            await until(
                lambda: (
                    server.counters["sync_requests_served"]
                    + server.counters["sync_requests_ignored"]
                    == 400
                ),
                "every request",
            )
            assert server.counters["sync_requests_ignored"] > 0
            assert server.peers[0].queued <= (1 << 16) + (1 << 16) + 4
            sock.close()

    arun(main())


# -- the server's answer


def _served(data: bytes) -> tuple[CertifiedBlock, ...]:
    msg = decode(data)
    assert isinstance(msg, SyncResponse)
    return msg.blocks


def test_answer_is_capped_by_the_request_the_limit_and_the_tip() -> None:
    ledger = Ledger(CHAIN)
    assert _served(answer(ledger, SyncRequest(1, 10))) == tuple(CHAIN[:10])
    assert len(_served(answer(ledger, SyncRequest(1, 100_000)))) == MAX_SYNC_BLOCKS
    assert _served(answer(ledger, SyncRequest(290, 100))) == tuple(CHAIN[289:])
    for empty in (SyncRequest(301, 5), SyncRequest(0, 5), SyncRequest(1, 0)):
        assert _served(answer(ledger, empty)) == ()
    assert _served(answer(None, SyncRequest(1, 5))) == ()
    assert answered_blocks(answer(ledger, SyncRequest(290, 100))) == len(CHAIN) - 289
    assert answered_blocks(answer(None, SyncRequest(1, 5))) == 0


def test_answer_is_the_stored_encodings_up_to_the_budget() -> None:
    ledger = Ledger(CHAIN)
    data = answer(ledger, SyncRequest(1, 256), budget=8000)
    blocks = _served(data)
    assert len(data) <= 8000 and 0 < len(blocks) < 256
    assert blocks == tuple(CHAIN[: len(blocks)])
    assert data == SyncResponse(CHAIN[: len(blocks)]).encode()  # no decoding, same bytes
    # Past the budget by one block: the first is always served when it fits in a frame.
    assert len(_served(answer(ledger, SyncRequest(1, 256), budget=10))) == 1
    assert _served(answer(ledger, SyncRequest(1, 256), budget=10, max_frame=10)) == ()


def test_a_peer_flooding_sync_requests_is_refused_then_banned() -> None:
    async def main() -> None:
        async with Network(config(1, sync_burst=5), source=Ledger(CHAIN)) as server:
            sock = await raw_peer(server)
            await shake(sock, 9)
            await send(sock, framed(SyncRequest(1, 1)) * 200)
            await read_until_closed(sock)
            sock.close()
            assert server.counters["sync_requests_served"] == 5
            assert server.counters["penalty_sync_flood"] >= 10  # 10 each: the ban
            assert server.counters["drop_banned"] == 1 and server.banned(HOSTILE_HOST) > 0

    arun(main())


def test_shape_problem_names_the_fault() -> None:
    assert shape_problem(CHAIN[:3], 1, 3) is None
    assert "4 blocks for a request of 3" in str(shape_problem(CHAIN[:4], 1, 3))
    assert "expected 2" in str(shape_problem(CHAIN[2:4], 2, 5))
    assert "certificate of round 1" in str(shape_problem([(CHAIN[1][0], CHAIN[0][1])], 2, 1))


def test_close_ends_the_sync_loop_when_its_request_is_answered_as_it_is_cancelled() -> None:
    """The request in flight completes (the network reports its peer gone) in the loop tick
    where the sync loop is cancelled: Python 3.11's `wait_for` swallows that cancellation,
    and a single cancel left the loop running, and a stopping node hung for ever."""
    asked: list[SyncRequest] = []

    async def silent(req: SyncRequest) -> None:
        asked.append(req)

    async def main() -> None:
        fake = await fake_peer(300, silent)
        client = Client(3, timeout=30)
        await client.net.start()
        client.syncer.start()
        try:
            client.net.connect(HOSTILE_HOST, _port(fake))
            await until(lambda: asked, "a sync request in flight")
            (peer,) = client.net.peers
            client.syncer.peer_lost(peer)  # answers the request with None, now
            closing = asyncio.ensure_future(client.syncer.close())
            done, _ = await asyncio.wait({closing}, timeout=10)  # never cancels `closing`
            assert closing in done, "close() still waits for the sync loop"
        finally:
            await client.net.close()
            fake.close()

    arun(main())


def test_syncer_rejects_nonsense_options() -> None:
    net = Network(config(1))
    with pytest.raises(ValueError, match="batch"):
        Syncer(net, Ledger().check_and_apply, tip=lambda: 0, batch=0)
    with pytest.raises(ValueError, match="timeout"):
        Syncer(net, Ledger().check_and_apply, tip=lambda: 0, timeout=0)
    with pytest.raises(ValueError, match="hedge"):
        Syncer(net, Ledger().check_and_apply, tip=lambda: 0, hedge=0)


def test_network_and_sync_run_on_the_standard_event_loop_too() -> None:
    async def main() -> None:
        async with (
            Network(config(1), source=Ledger(CHAIN[:40])) as server,
            Client(2, batch=16) as client,
        ):
            client.net.connect("127.0.0.1", server.port)
            await until(lambda: client.caught_up, "the catch-up")
            assert client.ledger.blocks == CHAIN[:40]

    asyncio.run(asyncio.wait_for(main(), 60))
