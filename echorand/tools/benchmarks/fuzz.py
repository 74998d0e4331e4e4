"""Fuzzing the frame splitter and every decoder with mutated valid frames (`echorand bench fuzz`).

Every message type is encoded once, valid and non-trivial (a block with transactions and a
carried certificate, votes, substitutes, a sync response, the handshake). Each round takes
one at random and mutates it: bit flips, a truncation, appended bytes, a 32-bit field
(length or count) overwritten with a boundary value, or a splice of two messages. The
result goes through `split_frames` as a stream (its length prefix tampered with too) and
through `decode`, and the frames the splitter returns through `decode_many`. Anything but a
`DecodeError` is a crash (and so, of course, is the process dying); the resident memory is
checked not to grow by more than the frame limits allow (one frame's worth per input).

The row's baseline is the same number of valid frames through the same calls: what the
checks of a mutated frame cost against a frame that passes.
"""

from __future__ import annotations

import random
import resource
import time
from dataclasses import dataclass

from echorand.tools.benchmarks import Report, Row
from echorand.wire.messages import (
    MAX_FRAME,
    BbaSignature,
    BbaSubstitute,
    Block,
    Certificate,
    DecodeError,
    FinalProof,
    FinalVote,
    GcBlock,
    GcProposal,
    GcSignature,
    GcSubstitute,
    Hello,
    HelloProof,
    SyncRequest,
    SyncResponse,
    Transaction,
    TxBatch,
    decode,
    decode_many,
    encode,
    split_frames,
)

INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 10_000, 10_001, 100_001, 1 << 24)
"""32-bit values written over a length or a count: the limits, one past them, and extremes."""


def samples(rng: random.Random) -> list[bytes]:
    """One valid encoding of every message type (with every optional part present)."""

    def b(n: int) -> bytes:
        return rng.randbytes(n)

    txs = [Transaction(0, b(32), b(32), 5, 1, n, b(64)) for n in range(4)]
    votes = sorted((s, b(64)) for s in rng.sample(range(1000), 5))
    cert = Certificate(9, 4, 0, b(32), 3, votes, [(2000, 7, 1, b(64))])
    empty = Certificate(10, 5, 1, b(32), (1 << 64) - 1, votes[:3])
    block = Block(10, b(32), 3, b(64), txs, b(64), prev_cert=cert)
    messages = [
        GcBlock(10, 1, 3, block, b(64)),
        GcSignature(10, 1, 3, b(64), b(32), b(32), b(64)),
        GcProposal(10, 2, 4, b(32), 3, b(64)),
        BbaSignature(10, 4, 5, 0, b(32), 3, b(64), b(64)),
        GcSubstitute(10, 2, 6, 9, 1, b(32), 3, b(64)),
        BbaSubstitute(10, 5, 6, 9, 2, 0, b(32), 3, b(64), b(64)),
        TxBatch(txs),
        Hello(2, b(32), b(32), b(32), 77, 9000),
        HelloProof(b(64)),
        SyncRequest(11, 256),
        SyncResponse([(block, cert), (Block.empty(11, b(32)), empty)]),
        FinalVote(10, (1 << 32) - 1, 7, b(32), b(64)),
        FinalProof(10, b(32), b"".join(i.to_bytes(8, "big") + b(64) for i in range(3))),
    ]
    return [encode(m) for m in messages]


def mutate(data: bytes, others: list[bytes], rng: random.Random) -> bytes:
    """One mutation of `data` (a message without its length prefix)."""
    kind = rng.randrange(6)
    out = bytearray(data)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncation
        del out[rng.randrange(len(out)) :]
    elif kind == 2:  # trailing bytes
        out += rng.randbytes(rng.randint(1, 64))
    elif kind in (3, 4) and len(out) >= 5:  # a length or count overwritten
        i = rng.randrange(1, len(out) - 3)
        value = rng.choice(INTERESTING) if kind == 3 else rng.getrandbits(32)
        out[i : i + 4] = value.to_bytes(4, "big")
    else:  # a splice of two messages
        other = rng.choice(others)
        cut = rng.randrange(len(out) + 1)
        out = out[:cut] + other[rng.randrange(len(other) + 1) :]
    return bytes(out)


def framed_stream(message: bytes, rng: random.Random) -> bytes:
    """`u32 length || message`, the length sometimes tampered with, then another frame."""
    length = len(message)
    roll = rng.random()
    if roll < 0.1:
        length = rng.choice(INTERESTING)
    elif roll < 0.2:
        length = max(0, length + rng.randint(-8, 8))
    tail = b"\x00\x00\x00\x05\x21" if rng.random() < 0.5 else b""
    return length.to_bytes(4, "big") + message + tail


@dataclass
class Outcome:
    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    crashes: int = 0
    first_crash: str = ""


def _one(message: bytes, stream: bytes, max_frame: int, out: Outcome) -> None:
    out.inputs += 1
    try:
        decode(message)
        out.accepted += 1
    except DecodeError:
        out.refused += 1
    try:
        frames, _ = split_frames(stream, max_frame)
    except DecodeError:
        return
    decode_many(frames)  # each item is a message or its DecodeError; nothing else may raise


def fuzz(count: int, seed: int = 1, max_frame: int = MAX_FRAME) -> tuple[Outcome, float, int]:
    """Run `count` mutated inputs; (what happened, seconds, RSS growth in bytes)."""
    rng = random.Random(seed)
    valid = samples(rng)
    out = Outcome()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    for _ in range(count):
        message = mutate(rng.choice(valid), valid, rng)
        stream = framed_stream(message, rng)
        try:
            _one(message, stream, max_frame, out)
        except Exception as e:  # not a DecodeError: a crash
            out.crashes += 1
            out.first_crash = out.first_crash or f"{type(e).__name__}: {e} on {message.hex()}"
    seconds = time.perf_counter() - start
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return out, seconds, grown


def _valid_pass(count: int, seed: int) -> float:
    rng = random.Random(seed)
    valid = samples(rng)
    out = Outcome()
    start = time.perf_counter()
    for _ in range(count):
        message = rng.choice(valid)
        _one(message, len(message).to_bytes(4, "big") + message, MAX_FRAME, out)
    return time.perf_counter() - start


def run(*, frames: int = 1_000_000, seed: int = 1) -> Report:
    """`frames` mutated frames through the splitter and the decoders; no crash allowed."""
    outcome, seconds, grown = fuzz(frames, seed)
    report = Report(f"fuzz: {frames:,} mutated frames (seed {seed})")
    report.add(
        Row(
            "mutated frames through split_frames, decode and decode_many",
            seconds,
            items=frames,
            baseline="the same number of valid frames",
            baseline_seconds=_valid_pass(frames, seed),
            target="no crash; RSS growth within one frame limit",
            target_met=outcome.crashes == 0 and grown <= MAX_FRAME,
            extra={
                "accepted": outcome.accepted,
                "refused": outcome.refused,
                "crashes": outcome.crashes,
                "rss_growth_bytes": grown,
                "first_crash": outcome.first_crash,
            },
        )
    )
    return report
