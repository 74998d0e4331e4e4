"""Transactions and the rules that accept or refuse them (docs/protocol.md §13).

A transaction is a transfer (kind 0: `amount` from the sender to the recipient)
or a delegation (kind 1: the sender's delegate becomes the recipient's
account; amount 0). Both pay `fee` to the producer of the block that carries
them and carry the sender's `nonce`: the number of transactions the sender
has sent before, so the first one has nonce 0.

The rules are checked natively, one call per batch, by `AccountState`:

- `state.check(transactions, pending)`: the reason each transaction would be
  refused (None when accepted), applying the accepted ones in order on a
  scratch copy, so a second spend of the same funds is refused.
- `state.prepare(block)` / `state.commit(changes)`: what a block changes, all
  or nothing, then the change itself.

Signatures are checked separately, in one batch (`verify_signatures`): a
certified block's transactions are not re-verified (PROTOCOL §6), a mempool's
are. Every reason is a short, stable string, listed below.
"""

from __future__ import annotations

from collections.abc import Sequence

from echorand._native import (
    GENESIS_ENTRY_SIZE,
    NO_DELEGATE,
    REASONS,
    RECORD_SIZE,
    UNDO_ENTRY_SIZE,
    AccountState,
    Changes,
    Transaction,
    derive_public_keys,
    devnet_seeds,
    valid_account_keys,
)
from echorand.wire.constants import KEY_SIZE, SIGNATURE_SIZE
from echorand.wire.crypto import Keypair, verify_batch

__all__ = [
    "BAD_RECIPIENT_KEY",
    "BAD_SIGNATURE",
    "DELEGATION_AMOUNT",
    "GENESIS_ENTRY_SIZE",
    "INSUFFICIENT_BALANCE",
    "NONCE_TOO_HIGH",
    "NONCE_TOO_LOW",
    "NO_DELEGATE",
    "OVERFLOW",
    "RECORD_SIZE",
    "SELF_TRANSFER",
    "TX_SIZE",
    "UNDO_ENTRY_SIZE",
    "UNKNOWN_DELEGATE",
    "UNKNOWN_KIND",
    "UNKNOWN_SENDER",
    "ZERO_AMOUNT",
    "AccountState",
    "Changes",
    "Transaction",
    "delegation",
    "derive_public_keys",
    "devnet_seeds",
    "sign_transaction",
    "transfer",
    "valid_account_keys",
    "verify_signatures",
]

TX_SIZE = 153
"""Bytes in one encoded transaction."""

# The reasons of the state rules, in the order they are checked.
UNKNOWN_KIND: str = REASONS["UNKNOWN_KIND"]
DELEGATION_AMOUNT: str = REASONS["DELEGATION_AMOUNT"]
UNKNOWN_SENDER: str = REASONS["UNKNOWN_SENDER"]
NONCE_TOO_LOW: str = REASONS["NONCE_TOO_LOW"]
NONCE_TOO_HIGH: str = REASONS["NONCE_TOO_HIGH"]
ZERO_AMOUNT: str = REASONS["ZERO_AMOUNT"]
SELF_TRANSFER: str = REASONS["SELF_TRANSFER"]
UNKNOWN_DELEGATE: str = REASONS["UNKNOWN_DELEGATE"]
INSUFFICIENT_BALANCE: str = REASONS["INSUFFICIENT_BALANCE"]
BAD_RECIPIENT_KEY: str = REASONS["BAD_RECIPIENT_KEY"]
OVERFLOW: str = REASONS["OVERFLOW"]

BAD_SIGNATURE = "bad signature"
"""The sender's signature does not verify (ZIP 215)."""

_NO_SIGNATURE = bytes(SIGNATURE_SIZE)


def sign_transaction(
    kind: int,
    keypair: Keypair,
    recipient: bytes,
    amount: int,
    fee: int,
    nonce: int,
    *,
    chain: bytes,
) -> Transaction:
    """A transaction from `keypair`'s account, signed for the network whose genesis hash is
    `chain` (PROTOCOL §2: it never verifies on another network)."""
    unsigned = Transaction(kind, keypair.public_key, recipient, amount, fee, nonce, _NO_SIGNATURE)
    signature = keypair.sign(unsigned.signing_bytes(chain))
    return Transaction(kind, keypair.public_key, recipient, amount, fee, nonce, signature)


def transfer(
    keypair: Keypair, recipient: bytes, amount: int, *, fee: int, nonce: int, chain: bytes
) -> Transaction:
    """A signed transfer of `amount` to the account of `recipient` (created if new)."""
    kind = Transaction.TRANSFER
    return sign_transaction(kind, keypair, recipient, amount, fee, nonce, chain=chain)


def delegation(
    keypair: Keypair, delegate: bytes, *, fee: int, nonce: int, chain: bytes
) -> Transaction:
    """A signed delegation to the account of `delegate` (your own key: no delegate)."""
    if len(delegate) != KEY_SIZE:
        raise ValueError(f"delegate must be {KEY_SIZE} bytes, got {len(delegate)}")
    kind = Transaction.DELEGATION
    return sign_transaction(kind, keypair, delegate, 0, fee, nonce, chain=chain)


def verify_signatures(transactions: Sequence[Transaction], chain: bytes) -> list[bool]:
    """Whether each transaction's signature verifies for the network `chain` (its genesis
    hash): one batch for all (ZIP 215)."""
    if not transactions:
        return []
    return verify_batch(
        [tx.sender for tx in transactions],
        [tx.signing_bytes(chain) for tx in transactions],
        [tx.signature for tx in transactions],
    )
