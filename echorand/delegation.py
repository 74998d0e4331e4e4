"""Delegation: substitute votes in an offline principal's seats (docs/protocol.md §16).

A principal `P` holds seats in `A_s`; a substitute vote is signed by another
account in `P`'s seats: `P`'s explicit delegate (mode 1) or its fallback
`C(P, s)` (mode 2). The principal and the mode are inside the signed body.

The two messages (`gc_substitute` 0x05, `bba_substitute` 0x06) are native
classes of the codec (`echorand.messages`); this module signs them and says
who may send them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from echorand.messages import BbaSubstitute, Certificate, GcSubstitute
from echorand.params import CERT_TAG
from echorand.signing import Signer
from echorand.tally import EMPTY_VALUE, Value

GC_SUBSTITUTE = 0x05
BBA_SUBSTITUTE = 0x06
ACTIVE_WINDOW = 64
"""M: the distinct producers of the last this many non-empty blocks."""
MAX_CERT_VOTES = 10_000

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


def cert_signing_bytes(round: int, b: int, value: Value, principal: int, mode: int) -> bytes:
    """What a substitute's `cert_sig` signs (the empty value when `b = 1`)."""
    block_hash, leader = EMPTY_VALUE if b == 1 else value
    body = struct.pack(">QB32sQQB", round, b, block_hash, leader, principal, mode)
    return CERT_TAG + b"\x00" + body


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
    fields = (round, step, signer, principal, mode, b, value[0], value[1])
    cert_sig = key.sign(BbaSubstitute(*fields, _NO_SIGNATURE, _NO_SIGNATURE).cert_signing_bytes())
    draft = BbaSubstitute(*fields, cert_sig, _NO_SIGNATURE)
    return BbaSubstitute(*fields, cert_sig, key.sign(draft.signing_bytes()))


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
