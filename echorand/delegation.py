"""Delegation: substitute votes in an offline principal's seats (docs/protocol.md §16).

A principal `P` holds seats in `A_s`; a substitute vote is signed by another
account in `P`'s seats: `P`'s explicit delegate (mode 1) or its fallback
`C(P, s)` (mode 2). The principal and the mode are inside the signed body.

The encodings here are the exact bytes of §16 (`gc_substitute` 0x05,
`bba_substitute` 0x06, a certificate's substitute section); they are the
reference for the Rust codec, which does not carry them yet.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from echorand.messages import Certificate, DecodeError
from echorand.params import BBA_TAG, CERT_TAG, EMPTY_HASH, GC_PROPOSAL_TAG, HASH_SIZE
from echorand.signing import Signer
from echorand.tally import EMPTY_VALUE, Value

GC_SUBSTITUTE = 0x05
BBA_SUBSTITUTE = 0x06
ACTIVE_WINDOW = 64
"""M: the distinct producers of the last this many non-empty blocks."""
MAX_CERT_VOTES = 10_000

_HEAD = struct.Struct(">BQIQQB")  # type, round, step, sender, principal, mode
_VALUE = struct.Struct(">32sQ")
_ENTRY = struct.Struct(">QQB64s")


class Mode(IntEnum):
    """Who speaks in a principal's seats."""

    OWN = 0
    EXPLICIT = 1
    FALLBACK = 2


def _check_head(name: str, sender: int, principal: int, mode: int) -> None:
    if mode not in (Mode.EXPLICIT, Mode.FALLBACK):
        raise ValueError(f"{name}.mode must be 1 (explicit) or 2 (fallback), got {mode}")
    if principal == sender:
        raise ValueError(f"{name}.principal must differ from the sender ({sender})")


def _check_value(name: str, block_hash: bytes, leader: int) -> None:
    if len(block_hash) != HASH_SIZE:
        raise ValueError(f"{name}.block_hash must be {HASH_SIZE} bytes")
    if block_hash == EMPTY_HASH and leader != 0:
        raise ValueError(f"{name}: an empty block hash needs leader 0")


def cert_signing_bytes(round: int, b: int, value: Value, principal: int, mode: int) -> bytes:
    """What a substitute's `cert_sig` signs (the empty value when `b = 1`)."""
    block_hash, leader = EMPTY_VALUE if b == 1 else value
    body = struct.pack(">QB32sQQB", round, b, block_hash, leader, principal, mode)
    return CERT_TAG + b"\x00" + body


@dataclass(frozen=True, slots=True)
class GcSubstitute:
    """`gc_substitute` (0x05): a step-2 or step-3 value in `principal`'s seats."""

    round: int
    step: int
    sender: int
    principal: int
    mode: int
    block_hash: bytes
    leader: int
    signature: bytes

    def __post_init__(self) -> None:
        _check_head("gc_substitute", self.sender, self.principal, self.mode)
        _check_value("gc_substitute", self.block_hash, self.leader)

    @property
    def value(self) -> Value:
        return (self.block_hash, self.leader)

    def _body(self) -> bytes:
        head = _HEAD.pack(
            GC_SUBSTITUTE, self.round, self.step, self.sender, self.principal, self.mode
        )
        return head + _VALUE.pack(self.block_hash, self.leader)

    def encode(self) -> bytes:
        return self._body() + self.signature

    def signing_bytes(self) -> bytes:
        return GC_PROPOSAL_TAG + b"\x00" + self._body()


@dataclass(frozen=True, slots=True)
class BbaSubstitute:
    """`bba_substitute` (0x06): a BBA vote in `principal`'s seats."""

    round: int
    step: int
    sender: int
    principal: int
    mode: int
    b: int
    block_hash: bytes
    leader: int
    cert_sig: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_head("bba_substitute", self.sender, self.principal, self.mode)
        if self.b not in (0, 1):
            raise ValueError(f"bba_substitute.b must be 0 or 1, got {self.b}")
        _check_value("bba_substitute", self.block_hash, self.leader)

    @property
    def value(self) -> Value:
        return (self.block_hash, self.leader)

    def _body(self) -> bytes:
        head = _HEAD.pack(
            BBA_SUBSTITUTE, self.round, self.step, self.sender, self.principal, self.mode
        )
        return head + bytes([self.b]) + _VALUE.pack(self.block_hash, self.leader) + self.cert_sig

    def encode(self) -> bytes:
        return self._body() + self.signature

    def signing_bytes(self) -> bytes:
        return BBA_TAG + b"\x00" + self._body()

    def cert_signing_bytes(self) -> bytes:
        return cert_signing_bytes(self.round, self.b, self.value, self.principal, self.mode)


Substitute = GcSubstitute | BbaSubstitute

_NO_SIGNATURE = bytes(64)


def sign_gc_substitute(
    key: Signer, round: int, step: int, signer: int, principal: int, mode: int, value: Value
) -> GcSubstitute:
    """gc_substitute: `signer` proposes `value` in `principal`'s seats."""
    fields = (round, step, signer, principal, mode, value[0], value[1])
    draft = GcSubstitute(*fields, _NO_SIGNATURE)
    return GcSubstitute(*fields, key.sign(draft.signing_bytes()))


def sign_bba_substitute(
    key: Signer,
    round: int,
    step: int,
    signer: int,
    principal: int,
    mode: int,
    b: int,
    value: Value,
) -> BbaSubstitute:
    """bba_substitute: `signer` votes `(b, value)` in `principal`'s seats."""
    cert_sig = key.sign(cert_signing_bytes(round, b, value, principal, mode))
    fields = (round, step, signer, principal, mode, b, value[0], value[1], cert_sig)
    draft = BbaSubstitute(*fields, _NO_SIGNATURE)
    return BbaSubstitute(*fields, key.sign(draft.signing_bytes()))


def decode_substitute(data: bytes) -> Substitute:
    """Decode a 0x05 or 0x06 message; `DecodeError` names what is wrong."""
    if len(data) < _HEAD.size:
        raise DecodeError("substitute: short input")
    kind, round, step, sender, principal, mode = _HEAD.unpack_from(data)
    rest = data[_HEAD.size :]
    try:
        if kind == GC_SUBSTITUTE:
            if len(rest) != _VALUE.size + 64:
                raise DecodeError("gc_substitute: wrong length")
            block_hash, leader = _VALUE.unpack_from(rest)
            return GcSubstitute(
                round, step, sender, principal, mode, block_hash, leader, rest[_VALUE.size :]
            )
        if kind == BBA_SUBSTITUTE:
            if len(rest) != 1 + _VALUE.size + 128:
                raise DecodeError("bba_substitute: wrong length")
            block_hash, leader = _VALUE.unpack_from(rest, 1)
            sigs = rest[1 + _VALUE.size :]
            return BbaSubstitute(
                round, step, sender, principal, mode, rest[0], block_hash, leader,
                sigs[:64], sigs[64:],
            )  # fmt: skip
    except ValueError as e:
        raise DecodeError(str(e)) from None
    raise DecodeError(f"substitute: unknown type 0x{kind:02x}")


# --- who may substitute --------------------------------------------------------------


def fallback_signer(active: Sequence[int], lowest_seat: int, n_c: int) -> int | None:
    """C_n = M[ceil(n K / N_c) - 1], n = lowest_seat + 1 (1-based), K = len(M)."""
    k = len(active)
    if k == 0:
        return None
    n = lowest_seat + 1
    return active[-(-n * k // n_c) - 1]


def next_active(active: tuple[int, ...], producers: tuple[int, ...]) -> tuple[int, ...]:
    """M after a block: the distinct producers of the last ACTIVE_WINDOW non-empty blocks.

    `producers` is that window itself (most recent last); M is it sorted, distinct."""
    return tuple(sorted(set(producers[-ACTIVE_WINDOW:])))


# --- certificates with substitutes -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubstituteEntry:
    """One substitute vote in a certificate: `principal`'s seats, signed by `signer`."""

    principal: int
    signer: int
    mode: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class DelegatedCertificate:
    """CERT_r with its substitute section (§16): own votes in `certificate`, the rest in
    `substitutes`, principals strictly ascending and distinct from the own signers."""

    certificate: Certificate
    substitutes: tuple[SubstituteEntry, ...]

    def __post_init__(self) -> None:
        principals = [e.principal for e in self.substitutes]
        if principals != sorted(set(principals)):
            raise ValueError("certificate: substitute principals must be strictly ascending")
        if set(principals) & set(self.certificate.signers):
            raise ValueError("certificate: a principal is both an own signer and substituted")
        if len(principals) + len(self.certificate.signers) > MAX_CERT_VOTES:
            raise ValueError(f"certificate: more than {MAX_CERT_VOTES} votes")
        for e in self.substitutes:
            _check_head("certificate substitute", e.signer, e.principal, e.mode)

    def __getattr__(self, name: str) -> object:
        return getattr(self.certificate, name)

    def encode(self) -> bytes:
        entries = b"".join(
            _ENTRY.pack(e.principal, e.signer, e.mode, e.signature) for e in self.substitutes
        )
        return self.certificate.encode() + len(self.substitutes).to_bytes(4, "big") + entries


AnyCertificate = Certificate | DelegatedCertificate


def split_certificate(cert: AnyCertificate) -> tuple[Certificate, tuple[SubstituteEntry, ...]]:
    if isinstance(cert, DelegatedCertificate):
        return cert.certificate, cert.substitutes
    return cert, ()


def with_substitutes(cert: Certificate, substitutes: Iterable[SubstituteEntry]) -> AnyCertificate:
    entries = tuple(sorted(substitutes, key=lambda e: e.principal))
    return DelegatedCertificate(cert, entries) if entries else cert
