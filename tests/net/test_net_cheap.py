"""Cheap checks first: no signature is verified for a message or transaction that fails a
check without one, and a block's own signatures before the certificate it carries."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import pytest
from _ledger_model import genesis_entries
from _sandbox import PARAMS, Sandbox

from echorand.core.events import Commit, Disconnect, Relay
from echorand.core.validate import CachingVerifier, DropReason, NativeVerifier
from echorand.ledger import mempool as mempool_module
from echorand.ledger.mempool import Mempool
from echorand.wire import transactions as T
from echorand.wire.crypto import Keypair
from echorand.wire.messages import GcBlock, Transaction
from echorand.wire.transactions import AccountState, transfer

CHAIN = bytes(range(32))


class Counting(NativeVerifier):
    """The native verifier, counting the signatures it is asked to verify."""

    def __init__(self) -> None:
        self.count = 0

    def verify_batch(
        self, public_keys: Sequence[bytes], messages: Sequence[bytes], signatures: Sequence[bytes]
    ) -> list[bool]:
        self.count += len(public_keys)
        return super().verify_batch(public_keys, messages, signatures)


def round_two() -> tuple[Sandbox, Counting]:
    """A sandbox in round 2 after a proposed block: blocks carry CERT_1. Its verifier counts."""
    sb = Sandbox()
    sb.take()
    block = sb.block(sb.best_remote_producer())
    sb.recv(sb.gc_block(block))
    sb.recv(*sb.votes(4, 0, (block.hash, block.producer), sb.signers(4, PARAMS.t_h + 1)))
    assert any(isinstance(a, Commit) for a in sb.take()) and sb.ctx.carried is not None
    counting = Counting()
    sb.node.verifier = counting
    return sb, counting


def test_a_gc_block_with_a_copied_certificate_and_a_forged_signature_costs_three() -> None:
    sb, counting = round_two()
    real = sb.block(sb.best_remote_producer())
    forged = GcBlock(2, 1, real.producer, real, os.urandom(64))
    sb.recv(forged)
    assert sb.take() == [Disconnect(forged, DropReason.BAD_SIGNATURE)]
    assert counting.count == 3  # message, seed and block signatures: not the N_c carried votes
    assert len(sb.ctx.carried.votes) > 3  # type: ignore[union-attr]


def test_one_carried_certificate_is_verified_once_per_batch() -> None:
    sb, counting = round_two()
    ctx = sb.ctx
    producers = sorted((ctx.priority(a), a) for a in range(16) if ctx.priority(a) is not None)
    remote = [a for _, a in producers if a not in sb.keys][:2]
    assert len(remote) == 2
    blocks = [sb.gc_block(sb.block(a)) for a in remote]
    sb.recv(*blocks)
    votes = len(ctx.carried.votes)  # type: ignore[union-attr]
    assert counting.count == 2 * 3 + votes
    assert Relay(blocks[0]) in sb.take()


def test_a_node_verifier_answers_from_what_was_verified_ahead() -> None:
    inner = Counting()
    cache = CachingVerifier(inner, capacity=4)
    key = Keypair.from_seed(bytes(32))
    checks = [(key.public_key, bytes([i]), key.sign(bytes([i]))) for i in range(6)]
    cache.remember(checks[:2], [True, True])
    assert cache.verify_batch(*zip(*checks[:2], strict=True)) == [True, True]
    assert inner.count == 0
    cache.verify_batch(*zip(*checks, strict=True))
    assert inner.count == 4 and len(cache.cache) == 4  # bounded: the oldest forgotten
    with pytest.raises(ValueError):
        CachingVerifier(inner, capacity=0)


# --- the mempool ------------------------------------------------------------------------

KEYPAIRS = [Keypair.from_seed(hashlib.sha256(b"cheap %d" % i).digest()) for i in range(4)]
OUTSIDER = Keypair.from_seed(hashlib.sha256(b"cheap outsider").digest())


def forged(tx: Transaction) -> Transaction:
    sig = bytes([tx.signature[0] ^ 1]) + tx.signature[1:]
    return Transaction(tx.kind, tx.sender, tx.recipient, tx.amount, tx.fee, tx.nonce, sig)


@pytest.fixture
def pool() -> Mempool:
    state = AccountState(genesis_entries([k.public_key for k in KEYPAIRS], [100] * 4))
    return Mempool(state, genesis_hash=CHAIN)


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many signatures the mempool verifies (the real function, counted)."""
    counts: list[int] = []
    real = mempool_module.verify_signatures

    def counted(txs: Sequence[Transaction], chain: bytes) -> list[bool]:
        counts.append(len(txs))
        return real(txs, chain)

    monkeypatch.setattr(mempool_module, "verify_signatures", counted)
    return counts


def pay(sender: Keypair, amount: int = 10, nonce: int = 0) -> Transaction:
    to = KEYPAIRS[3].public_key
    return transfer(sender, to, amount, fee=1, nonce=nonce, chain=CHAIN)


def test_no_signature_is_verified_for_what_the_account_state_refuses(
    pool: Mempool, verified: list[int]
) -> None:
    bad = [
        forged(pay(OUTSIDER)),  # unknown sender
        forged(pay(KEYPAIRS[0], amount=1000)),  # more than the balance
        forged(pay(KEYPAIRS[1], nonce=5)),  # a nonce far ahead... queued chains may fill it
    ]
    assert pool.to_verify(bad) == [bad[2]]
    reasons = pool.add(bad)
    assert reasons == [T.UNKNOWN_SENDER, T.INSUFFICIENT_BALANCE, T.NONCE_TOO_HIGH]
    assert sum(verified) == 0


def test_signatures_known_ahead_are_not_verified_again(pool: Mempool, verified: list[int]) -> None:
    good, bad = pay(KEYPAIRS[0]), forged(pay(KEYPAIRS[1]))
    assert pool.to_verify([good, bad]) == [good, bad]
    assert pool.add([good, bad], verified={good.id}, refuted={bad.id}) == [None, T.BAD_SIGNATURE]
    assert sum(verified) == 0
    # The refused one left no trace in the sender's pending state: its nonce is free again.
    assert pool.add([pay(KEYPAIRS[1], amount=11)]) == [None]
    assert pool.to_verify([good]) == []  # queued already
