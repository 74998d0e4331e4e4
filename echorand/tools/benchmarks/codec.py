"""The wire codec: decoding and encoding a 10 000-transaction block and 10 000 votes.

Ours is `echorand.wire.messages` (Rust). The baseline, measured in the same run, is a
pure-Python codec written with `struct` and frozen slotted dataclasses (below, clearly
marked): what the codec would be without the native core. Both do the same work and
the same checks (kinds, flags, values, the payload hash); the baseline makes every
transaction object when it decodes a block, ours makes them on first access, so the
block is measured both without and with touching its transactions.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from echorand.tools.benchmarks import Report, Row, best_time
from echorand.wire.messages import (
    BbaSignature,
    Block,
    GcBlock,
    Transaction,
    decode,
    decode_many,
    encode_many,
)

BASELINE = "pure-Python struct codec"

# ------------------------------------------------- BASELINE: pure-Python codec
# A straightforward pure-Python implementation of the same wire format, used only
# as the baseline of this benchmark.


@dataclass(frozen=True, slots=True)
class PyTransaction:
    kind: int
    sender: bytes
    recipient: bytes
    amount: int
    fee: int
    nonce: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class PyBlock:
    round: int
    prev_hash: bytes
    producer: int
    seed_sig: bytes
    payload_hash: bytes
    transactions: tuple[PyTransaction, ...]
    signature: bytes


@dataclass(frozen=True, slots=True)
class PyGcBlock:
    round: int
    step: int
    sender: int
    block: PyBlock
    signature: bytes


@dataclass(frozen=True, slots=True)
class PyBbaSignature:
    round: int
    step: int
    sender: int
    b: int
    block_hash: bytes
    leader: int
    cert_sig: bytes
    signature: bytes


_TX = struct.Struct(">B32s32sQQQ64s")
_HEAD = struct.Struct(">BQIQ")
_HEADER = struct.Struct(">BQ32sQ64s32s")
_COUNT = struct.Struct(">I")
_BBA = struct.Struct(">BQIQB32sQ64s64s")
_NO_LEADER = (1 << 64) - 1


def py_decode_gc_block(data: bytes) -> PyGcBlock:
    """Baseline: decodes a gc_block with a proposed block (without CERT_{r-1}, as the
    benchmark's blocks are), checking what ours checks."""
    view = memoryview(data)
    code, round_, step, sender = _HEAD.unpack_from(view, 0)
    if code != 0x01:
        raise ValueError(f"type: expected 0x01, got {code:#04x}")
    kind, b_round, prev_hash, producer, seed_sig, payload_hash = _HEADER.unpack_from(view, 21)
    if kind != 0:
        raise ValueError(f"block.kind: {kind}")
    signature = bytes(view[166:230])
    (count,) = _COUNT.unpack_from(view, 230)
    if count > 100_000:
        raise ValueError(f"block.tx_count: {count} over limit 100000")
    end = 234 + count * _TX.size
    if len(data) != end + 1 + 64:
        raise ValueError("block: wrong length")
    if view[end] != 0:
        raise ValueError("block.has_prev_cert: the baseline decodes blocks without one")
    if hashlib.sha256(view[230 : end + 1]).digest() != payload_hash:
        raise ValueError("block.payload_hash: does not match payload")
    txs = []
    for fields in _TX.iter_unpack(view[234:end]):
        if fields[0] > 1 or (fields[0] == 1 and fields[3] != 0):
            raise ValueError("transaction: non-canonical")
        txs.append(PyTransaction(*fields))
    block = PyBlock(b_round, prev_hash, producer, seed_sig, payload_hash, tuple(txs), signature)
    return PyGcBlock(round_, step, sender, block, bytes(view[end + 1 :]))


def py_encode_gc_block(m: PyGcBlock) -> bytes:
    """Baseline: encodes a gc_block."""
    b = m.block
    parts = [
        _HEAD.pack(0x01, m.round, m.step, m.sender),
        _HEADER.pack(0, b.round, b.prev_hash, b.producer, b.seed_sig, b.payload_hash),
        b.signature,
        _COUNT.pack(len(b.transactions)),
    ]
    pack = _TX.pack
    parts += [
        pack(t.kind, t.sender, t.recipient, t.amount, t.fee, t.nonce, t.signature)
        for t in b.transactions
    ]
    parts.append(b"\x00")  # no CERT_{r-1}
    parts.append(m.signature)
    return b"".join(parts)


def py_decode_bba(data: bytes) -> PyBbaSignature:
    """Baseline: decodes a bba_signature, checking what ours checks."""
    if len(data) != _BBA.size:
        raise ValueError(f"bba_signature: {len(data)} bytes, expected {_BBA.size}")
    code, round_, step, sender, b, block_hash, leader, cert_sig, sig = _BBA.unpack(data)
    if code != 0x04:
        raise ValueError(f"type: expected 0x04, got {code:#04x}")
    if b > 1:
        raise ValueError(f"bba_signature.b: non-canonical value {b}")
    if (leader == _NO_LEADER) != (b == 1):
        raise ValueError("bba_signature.leader: b = 1 carries the empty value, b = 0 a block's")
    return PyBbaSignature(round_, step, sender, b, block_hash, leader, cert_sig, sig)


def py_encode_bba(m: PyBbaSignature) -> bytes:
    """Baseline: encodes a bba_signature."""
    return _BBA.pack(
        0x04, m.round, m.step, m.sender, m.b, m.block_hash, m.leader, m.cert_sig, m.signature
    )


# ------------------------------------------------------------- the workload


def make_block_message(n_txs: int, rng: random.Random) -> GcBlock:
    """A gc_block whose block carries `n_txs` random transactions."""
    txs = [
        Transaction(
            kind=i % 2,
            sender=rng.randbytes(32),
            recipient=rng.randbytes(32),
            amount=0 if i % 2 else rng.getrandbits(40),
            fee=rng.getrandbits(16),
            nonce=i,
            signature=rng.randbytes(64),
        )
        for i in range(n_txs)
    ]
    block = Block(
        round=1000,
        prev_hash=rng.randbytes(32),
        producer=17,
        seed_sig=rng.randbytes(64),
        transactions=txs,
        signature=rng.randbytes(64),
    )
    return GcBlock(round=1000, step=1, sender=17, block=block, signature=rng.randbytes(64))


def make_votes(n: int, rng: random.Random) -> list[BbaSignature]:
    """`n` bba_signature votes from distinct senders, mostly for one value."""
    value = rng.randbytes(32)
    return [
        BbaSignature(
            round=1000,
            step=5 + i % 3,
            sender=i,
            b=1 if i % 10 == 0 else 0,
            block_hash=value,
            leader=_NO_LEADER if i % 10 == 0 else 17,
            cert_sig=rng.randbytes(64),
            signature=rng.randbytes(64),
        )
        for i in range(n)
    ]


def _check_agreement(block_frame: bytes, vote_frames: list[bytes]) -> None:
    """Ours and the baseline read and write the same bytes (or the comparison is void)."""
    if py_encode_gc_block(py_decode_gc_block(block_frame)) != block_frame:
        raise AssertionError("baseline block codec disagrees with ours")
    if [py_encode_bba(py_decode_bba(f)) for f in vote_frames[:100]] != vote_frames[:100]:
        raise AssertionError("baseline vote codec disagrees with ours")
    ours = decode(block_frame)
    theirs = py_decode_gc_block(block_frame)
    if ours.block.transactions[-1].encode() != _TX.pack(
        *(getattr(theirs.block.transactions[-1], f) for f in PyTransaction.__slots__)
    ):
        raise AssertionError("decoded transactions differ")


def run(
    *, txs: int = 10_000, votes: int = 10_000, repeat: int = 5, min_seconds: float = 0.05
) -> Report:
    """Times decoding and encoding a `txs`-transaction block and `votes` votes (ours, baseline)."""
    rng = random.Random(20240601)
    block_msg = make_block_message(txs, rng)
    block_frame = block_msg.encode()
    vote_msgs = make_votes(votes, rng)
    vote_frames = encode_many(vote_msgs)
    _check_agreement(block_frame, vote_frames)
    py_block = py_decode_gc_block(block_frame)
    py_votes = [py_decode_bba(f) for f in vote_frames]

    def timed(fn: Callable[[], object]) -> float:
        return best_time(fn, repeat=repeat, min_seconds=min_seconds)

    report = Report(title=f"codec: a {txs}-transaction block, {votes} votes")
    block_baseline = timed(lambda: py_decode_gc_block(block_frame))
    extra = {"frame_bytes": len(block_frame)}
    report.add(
        Row(
            name=f"decode gc_block, {txs} txs (tx objects on demand)",
            seconds=timed(lambda: decode(block_frame)),
            items=txs,
            baseline=BASELINE,
            baseline_seconds=block_baseline,
            extra=extra,
        )
    )
    report.add(
        Row(
            name=f"decode gc_block, {txs} txs + make every Transaction",
            seconds=timed(lambda: decode(block_frame).block.transactions),
            items=txs,
            baseline=BASELINE,
            baseline_seconds=block_baseline,
            extra=extra,
        )
    )
    report.add(
        Row(
            name=f"encode gc_block, {txs} txs",
            seconds=timed(block_msg.encode),
            items=txs,
            baseline=BASELINE,
            baseline_seconds=timed(lambda: py_encode_gc_block(py_block)),
            extra=extra,
        )
    )
    vote_baseline = timed(lambda: [py_decode_bba(f) for f in vote_frames])
    report.add(
        Row(
            name=f"decode {votes} bba_signature (decode_many)",
            seconds=timed(lambda: decode_many(vote_frames)),
            items=votes,
            baseline=BASELINE,
            baseline_seconds=vote_baseline,
        )
    )
    report.add(
        Row(
            name=f"decode {votes} bba_signature (decode, one call each)",
            seconds=timed(lambda: [decode(f) for f in vote_frames]),
            items=votes,
            baseline=BASELINE,
            baseline_seconds=vote_baseline,
        )
    )
    report.add(
        Row(
            name=f"encode {votes} bba_signature (encode_many)",
            seconds=timed(lambda: encode_many(vote_msgs)),
            items=votes,
            baseline=BASELINE,
            baseline_seconds=timed(lambda: [py_encode_bba(m) for m in py_votes]),
        )
    )
    return report
