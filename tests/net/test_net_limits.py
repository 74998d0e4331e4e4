"""The network's defences, one rule each, on loopback: the proven handshake, scores and bans,
per-address limits, the idle deadline, fair and bounded inboxes, bounded partial frames, the
held messages of the next rounds, and a bounded close."""

from __future__ import annotations

import asyncio
import socket

import pytest
from nethelp import (
    GENESIS,
    HOSTILE_HOST,
    arun,
    config,
    framed,
    handshake,
    hello,
    identity,
    node_key,
    proposal,
    raw_frame,
    raw_peer,
    read_frame,
    read_until_closed,
    send,
    shake,
    until,
)

from echorand.core.validate import BAN_SCORE, DropReason
from echorand.net.gossip import Held
from echorand.net.network import KEEPALIVE, Network
from echorand.wire.messages import GcProposal, Hello, HelloProof, decode, encode

# -- the handshake


def test_a_replayed_hello_without_its_proof_does_not_displace_the_real_peer() -> None:
    async def main() -> None:
        async with Network(config(1)) as a, Network(config(2, peers=(("127.0.0.1", a.port),))) as b:
            await until(lambda: len(a.peers) == 1, "b's link")
            real = a.peers[0]
            # An attacker replays b's Hello (b's key) to a, then any proof it can get.
            sock = await raw_peer(a)
            await send(sock, framed(Hello(2, GENESIS, node_key(2), bytes(32), 0, 1)))
            theirs = decode(await read_frame(sock))
            assert isinstance(theirs, Hello)
            await send(sock, framed(HelloProof(bytes(64))))
            await read_until_closed(sock)
            sock.close()
            assert a.counters["drop_bad_proof"] == 1 and a.counters["drop_duplicate"] == 0
            assert a.peers == [real] and real.is_open and b.peers
            assert a.banned(HOSTILE_HOST) > 0

    arun(main())


def test_a_proof_made_for_the_other_role_or_another_connection_is_refused() -> None:
    ours = handshake(5, outbound=True)
    theirs = handshake(1, outbound=False)
    hello_a, hello_b = ours.hello(), theirs.hello()
    assert theirs.check(hello_a, ours.proof(hello_b))  # the right one
    mirrored = handshake(5, outbound=False, tip=0)
    mirrored.nonce = ours.nonce
    assert not theirs.check(hello_a, mirrored.proof(hello_b))  # signed as an acceptor
    other = handshake(1, outbound=False)
    assert not other.check(hello_a, ours.proof(hello_b))  # another connection's nonce


def test_a_pinned_peer_that_proves_another_key_is_dropped() -> None:
    async def main() -> None:
        async with Network(config(1)) as a:
            address = ("127.0.0.1", a.port)
            pinned = {address: node_key(9)}
            async with Network(config(2, peers=(address,), pinned=pinned, backoff_min=5.0)) as b:
                await until(lambda: b.counters["drop_wrong_key"] >= 1, "the wrong key")
                assert b.peers == [] and not b.banned("127.0.0.1")

    arun(main())


# -- scores and bans


def test_penalties_add_up_to_a_ban_that_doubles_and_refuses_the_address() -> None:
    async def main() -> None:
        # Bans long enough that the refused connection below comes while the ban lasts on a
        # loaded machine (a 0.3 s ban could end first: the connection was then let in).
        base = 1.5
        cfg = config(1, ban_base=base, ban_max=10.0)
        async with Network(cfg) as a:
            for ban in (1, 2):
                sock = await raw_peer(a)
                await shake(sock, 9)
                await until(lambda: len(a.peers) == 1, "the peer")
                peer = a.peers[0]
                for _ in range(BAN_SCORE // DropReason.BAD_SIGNATURE.penalty):
                    a.penalize(peer, DropReason.BAD_SIGNATURE)
                await read_until_closed(sock)
                sock.close()
                assert a.counters["bans"] == ban and a.standings[HOSTILE_HOST].bans == ban
                seconds = a.banned(HOSTILE_HOST)
                assert base * 2 ** (ban - 1) - 0.5 < seconds <= base * 2 ** (ban - 1) + 1e-6
                # Refused at once while banned; the benign reasons cost nothing.
                again = await raw_peer(a)
                await read_until_closed(again)
                again.close()
                a.penalize(peer, DropReason.DUPLICATE)
                await until(lambda: not a.banned(HOSTILE_HOST), "the end of the ban")
            assert a.counters["drop_banned"] >= 4
            assert "127.0.0.1" not in a.standings

    arun(main())


def test_a_score_decays_with_its_half_life() -> None:
    async def main() -> None:
        async with Network(config(1, score_half_life=0.2)) as a:
            sock = await raw_peer(a)
            await shake(sock, 9)
            await until(lambda: len(a.peers) == 1, "the peer")
            a.penalize(a.peers[0], DropReason.NOT_A_PRODUCER)
            assert a.status()["scores"] == {HOSTILE_HOST: 25}
            await asyncio.sleep(0.5)
            assert a.status()["scores"].get(HOSTILE_HOST, 0) < 5
            sock.close()

    arun(main())


# -- limits and deadlines


def test_connections_from_one_address_are_limited_and_others_still_accepted() -> None:
    async def main() -> None:
        async with Network(config(1, max_per_address=2)) as a:
            socks = [await raw_peer(a) for _ in range(2)]
            await until(lambda: a.metrics()["connections"] == 2, "two connections")
            third = await raw_peer(a)
            await read_until_closed(third)
            assert a.counters["drop_address_limit"] == 1
            other = await raw_peer(a, source="127.0.0.3")
            await shake(other, 7)
            await until(lambda: len(a.peers) == 1, "the peer from another address")
            for s in [*socks, third, other]:
                s.close()

    arun(main())


def test_a_silent_peer_is_dropped_and_busy_links_are_kept_alive() -> None:
    async def main() -> None:
        idle = 0.4
        async with (
            Network(config(1, idle_timeout=idle)) as a,
            Network(config(2, idle_timeout=idle, peers=(("127.0.0.1", a.port),))) as b,
        ):
            await until(lambda: len(a.peers) == 1, "b")
            sock = await raw_peer(a)
            await shake(sock, 9)
            await read_until_closed(sock)  # it sends nothing: dropped (and told nothing)
            sock.close()
            assert a.counters["drop_idle"] == 1
            await asyncio.sleep(3 * idle)  # no gossip between a and b: keepalives only
            assert len(a.peers) == 1 and len(b.peers) == 1
            assert a.counters["keepalives_in"] >= 2 and a.inbox.nbytes == 0
            assert b"\x10" + bytes(4) == KEEPALIVE  # an empty tx_batch

    arun(main())


def test_one_flooding_peer_is_paused_alone_and_served_in_turn() -> None:
    async def main() -> None:
        cfg = config(1, inbox_per_peer=1 << 16)
        async with Network(cfg) as a:
            flood = await raw_peer(a)
            await shake(flood, 8)
            quiet = await raw_peer(a, source="127.0.0.3")
            await shake(quiet, 9)
            await until(lambda: len(a.peers) == 2, "two peers")
            await send(flood, framed(*[proposal(i) for i in range(5000)]))  # ~600 KB
            await until(lambda: a.inbox.pauses >= 1, "the flooding peer's pause")
            flooder = next(p for p in a.peers if p.key == node_key(8))
            assert a.inbox.waiting(flooder) <= (1 << 16) + (1 << 18)
            await send(quiet, framed(proposal(1, 7)))
            await until(
                lambda: (
                    len(a.inbox) >= 2
                    and any(p.key == node_key(9) and a.inbox.waiting(p) for p in a.peers)
                ),
                "the quiet peer's message",
            )
            # Round-robin: the quiet peer's batch comes within one turn, not after the flood.
            first, second = a.receive_nowait(), a.receive_nowait()
            assert first is not None and second is not None
            assert {first.peer.key, second.peer.key} == {node_key(8), node_key(9)}
            for s in (flood, quiet):
                s.close()

    arun(main())


def test_large_partial_frames_past_the_budget_wait_unread() -> None:
    async def main() -> None:
        budget = 320_000
        async with Network(config(1, partial_limit=budget)) as a:
            socks = []
            for i in range(3):
                s = await raw_peer(a, source=f"127.0.0.{10 + i}")
                await shake(s, 10 + i)
                socks.append(s)
            await until(lambda: len(a.peers) == 3, "three peers")
            # A tx_batch of 1000 transactions (153 KB), a distinct one per peer.
            frames = [
                raw_frame(
                    b"\x10"
                    + (1000).to_bytes(4, "big")
                    + (bytes(72) + bytes([i + 1]) + bytes(80)) * 1000
                )
                for i in range(3)
            ]
            for s, frame in zip(socks, frames, strict=True):  # two fit, the third waits
                await send(s, frame[:1000])
            await until(lambda: a.counters["partial_waits"] == 1, "the third to wait")
            assert a.partial_bytes <= budget
            for s, frame in zip(socks, frames, strict=True):
                await send(s, frame[1000:])
            await until(lambda: len(a.tx_inbox) == 3, "all three frames")
            assert a.partial_bytes == 0
            for s in socks:
                s.close()

    arun(main())


def test_close_is_bounded_with_a_dial_stuck_mid_connect() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = socket.create_connection(server.getsockname())

    async def main() -> None:
        host, port = server.getsockname()
        net = Network(config(1, peers=((host, port),), connect_timeout=30.0, close_timeout=0.5))
        await net.start()
        await asyncio.sleep(0.3)  # the dial is in connect()
        await asyncio.wait_for(net.close(), 5)
        assert not net._conns

    try:
        arun(main())
    finally:
        filler.close()
        server.close()


# -- held messages of the next rounds


def test_held_messages_keep_to_their_window_and_byte_limits() -> None:
    held = Held(limit=1000, per_peer=400, window=2)
    msg = {r: GcProposal(r, 2, 0, bytes(32), 0, bytes(64)) for r in range(1, 9)}
    frame = encode(msg[1])  # every one is this long
    size = len(frame)
    assert held.add(5, msg[6], frame, "p") and held.add(5, msg[7], frame, "p")
    assert not held.add(5, msg[8], frame, "p")  # past the window
    assert not held.add(5, msg[5], frame, "p")  # not ahead
    while held.add(5, msg[6], frame, "p"):
        pass
    assert held._by_peer["p"] <= 400 and held.nbytes == held._by_peer["p"]
    while held.add(5, msg[6], frame, "q") or held.add(5, msg[6], frame, "r"):
        pass
    assert held.nbytes <= 1000 and held.dropped >= 3
    n7 = sum(1 for e in held._rounds[7])
    assert [m for m, _, _ in held.take(7)] == [msg[7]] * n7
    assert held.take(7) == [] and len(held) == 0 and held.nbytes == 0
    big = Held(limit=10_000, per_peer=10, window=1)
    assert big.add(0, msg[1], frame, "p")  # one message more than per_peer when none held
    assert not big.add(0, msg[1], frame, "p") and size > 10
    with pytest.raises(ValueError):
        Held(0, 1, 1)


def test_a_hello_after_a_raw_hello_is_refused_before_any_proof() -> None:
    async def main() -> None:
        async with Network(config(1)) as a:
            sock = await raw_peer(a)
            await send(sock, framed(hello(3), hello(3)))
            await read_until_closed(sock)
            sock.close()
            assert a.counters["drop_bad_hello"] == 1 and a.counters["handshakes"] == 0
            assert identity(3).public_key == node_key(3)

    arun(main())
