"""Delegation: substitute votes in an offline principal's seats (docs/protocol.md §16).

A principal `P` holds seats in `A_s`; a substitute vote is signed by another
account in `P`'s seats: `P`'s explicit delegate (mode 1) or its fallback
`C(P, s)` (mode 2). The principal and the mode are inside the signed body.

The two messages (`gc_substitute` 0x05, `bba_substitute` 0x06) are native
classes of the codec (`echorand.wire.messages`), and so is a certificate's
substitute section (`Certificate.substitutes`); this module signs the
messages and says who may send them.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from echorand.protocol.signing import Signer
from echorand.protocol.tally import Value
from echorand.wire.messages import BbaSubstitute, GcSubstitute

GC_SUBSTITUTE = 0x05
BBA_SUBSTITUTE = 0x06
ACTIVE_WINDOW = 64
"""M: the distinct producers of the last this many non-empty blocks."""


class Mode(IntEnum):
    """Who speaks in a principal's seats."""

    OWN = 0
    EXPLICIT = 1
    FALLBACK = 2


Substitute = GcSubstitute | BbaSubstitute

_NO_SIGNATURE = bytes(64)


def sign_gc_substitute(
    key: Signer,
    chain: bytes,
    round: int,
    step: int,
    signer: int,
    principal: int,
    mode: int,
    value: Value,
) -> GcSubstitute:
    """gc_substitute: `signer` proposes `value` in `principal`'s seats (`chain`: the genesis
    hash every signature is bound to, PROTOCOL §2)."""
    fields = (round, step, signer, principal, mode, value[0], value[1])
    draft = GcSubstitute(*fields, _NO_SIGNATURE)
    return GcSubstitute(*fields, key.sign(draft.signing_bytes(chain)))


def sign_bba_substitute(
    key: Signer,
    chain: bytes,
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
    unsigned = BbaSubstitute(*fields, _NO_SIGNATURE, _NO_SIGNATURE)
    cert_sig = key.sign(unsigned.cert_signing_bytes(chain))
    draft = BbaSubstitute(*fields, cert_sig, _NO_SIGNATURE)
    return BbaSubstitute(*fields, cert_sig, key.sign(draft.signing_bytes(chain)))


# --- who may substitute --------------------------------------------------------------


def fallback_signer(active: Sequence[int], lowest_seat: int, n_c: int) -> int | None:
    """C_n = M[ceil(n K / N_c) - 1], n = lowest_seat + 1 (1-based), K = len(M)."""
    k = len(active)
    if k == 0:
        return None
    n = lowest_seat + 1
    return active[-(-n * k // n_c) - 1]
