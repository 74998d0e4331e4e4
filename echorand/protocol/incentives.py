"""Block rewards (docs/protocol.md §16, "Incentives"): the reward level and who is paid.

Pure functions of the chain, so that every ledger mints exactly the same units:

- the level `R_r` rises at once with the share of empty blocks among the last
  `window` rounds and falls back towards its floor geometrically (`next_level`);
- a non-empty block of round r mints `producer_reward(R_r)` for its producer;
- the rest of `R_r` is the pool of its verifiers, paid when block r + 1 carries
  CERT_r: split by seats among the certificate's entries (`verifier_credits`).
  An own vote or an explicit delegate's vote pays the principal (who ran a node,
  or delegated to one); a fallback vote pays its signer (the principal did
  neither, the fallback did the work).

Integer arithmetic throughout; remainders of the split are not minted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from echorand.protocol.delegation import Mode
from echorand.protocol.params import Rewards
from echorand.wire.messages import Certificate

__all__ = [
    "next_level",
    "producer_reward",
    "verifier_credits",
    "verifier_pool",
]

Credits = list[tuple[int, int]]
"""`(account, units)` pairs, accounts ascending and distinct."""


def next_level(rewards: Rewards, previous: int, empties: int) -> int:
    """R_r, from R_{r-1} and the number of empty blocks among the `window` rounds before r.

    `target = floor + (ceiling - floor) * empties // window`;
    `R_r = max(target, R_{r-1} - ceil((R_{r-1} - floor) / 2^decay))`; 0 without rewards.
    """
    if not rewards.enabled:
        return 0
    if not 0 <= empties <= rewards.window:
        raise ValueError(f"empties must be in [0, {rewards.window}], got {empties}")
    floor = rewards.floor
    target = floor + (rewards.ceiling - floor) * empties // rewards.window
    previous = max(previous, floor)
    gap = previous - floor
    decayed = previous - (-(-gap >> rewards.decay))
    return max(target, decayed)


def producer_reward(rewards: Rewards, level: int) -> int:
    """What the producer of a non-empty block minted at `level` gets."""
    return level * rewards.producer_share // 100


def verifier_pool(rewards: Rewards, level: int) -> int:
    """What the verifiers of a non-empty block minted at `level` share."""
    return level - producer_reward(rewards, level)


def verifier_credits(pool: int, cert: Certificate, seats: Mapping[int, int]) -> Credits:
    """Split `pool` among the entries of `cert` by the seats (`seats`: account -> seats in
    A_step of the certificate's round) of the principals they vote for.

    Each payee gets `pool * its seats // all seats`; entries without seats count for nothing.
    """
    entries = _payees(cert, seats)
    total = sum(weight for _, weight in entries)
    if pool <= 0 or total == 0:
        return []
    paid: dict[int, int] = {}
    for payee, weight in entries:
        paid[payee] = paid.get(payee, 0) + weight
    credits = [(payee, pool * weight // total) for payee, weight in sorted(paid.items())]
    return [(payee, units) for payee, units in credits if units > 0]


def _payees(cert: Certificate, seats: Mapping[int, int]) -> list[tuple[int, int]]:
    """(payee, seats) for every entry of the certificate."""
    own: Iterable[tuple[int, int]] = ((signer, seats.get(signer, 0)) for signer in cert.signers)
    subs = (
        (signer if mode == Mode.FALLBACK else principal, seats.get(principal, 0))
        for principal, signer, mode, _ in cert.substitutes
    )
    return [(payee, weight) for payee, weight in (*own, *subs) if weight > 0]
