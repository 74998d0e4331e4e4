"""The node's side of fork recovery (PROTOCOL §6), in one process: two nodes whose ledgers
part after a common prefix, every block certified by the committee of its round on its own
chain. Which messages make a node suspect another chain, and what it does with the other
chain: keep its own, or roll back and apply the other, its transactions back in the pool.
(The same on real processes, partition and all: tests/node/test_fork_recovery.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from _chain import proposed_block

from echorand.core.consensus import tip_context
from echorand.node.config import NodeConfig
from echorand.node.node import Node
from echorand.node.view import ledger_tip
from echorand.protocol.finality import FinalCertificate
from echorand.protocol.signing import sign_final
from echorand.tools.devnet import DEVNET_PARAMS
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.crypto import Keypair
from echorand.wire.keys import load_node_keys
from echorand.wire.messages import (
    FINAL_STEP,
    Block,
    Certificate,
    FinalProof,
    GcSignature,
    Transaction,
)
from echorand.wire.transactions import transfer

CertifiedBlock = tuple[Block, Certificate]
ACCOUNTS = 8


class Pair:
    """Two nodes (no keys of their own) on one genesis, and every account's key pair."""

    def __init__(self, path: Path) -> None:
        genesis_dir = path / "genesis"
        genesis = create_devnet(
            genesis_dir, accounts=ACCOUNTS, nodes=1, seed="forks", params=DEVNET_PARAMS
        )
        self.chain = genesis.hash
        self.keypairs: dict[int, Keypair] = dict(
            load_node_keys(node_keys_path(genesis_dir, 0)).keypairs()
        )
        self.a = Node(NodeConfig(data_dir=path / "a", genesis=genesis_dir))
        self.b = Node(NodeConfig(data_dir=path / "b", genesis=genesis_dir))
        self.nonces = dict.fromkeys(self.keypairs, 0)

    def close(self) -> None:
        self.a.ledger.close()
        self.b.ledger.close()

    def transfer(self, sender: int) -> Transaction:
        nonce = self.nonces[sender]
        self.nonces[sender] += 1
        to = self.keypairs[(sender + 1) % ACCOUNTS].public_key
        return transfer(self.keypairs[sender], to, 1, fee=1, nonce=nonce, chain=self.chain)

    def extend(self, node: Node, *, empty: bool = False, txs=()) -> CertifiedBlock:
        """Commit the next block at `node`, certified by every member of the deciding step's
        committee of that round on its chain (step 4 for a proposed block, 5 for the empty)."""
        ledger = node.ledger
        r = ledger.tip + 1
        ctx = node.round_context(r)
        if empty:
            block = Block.empty(r, ledger.tip_hash)
            step, b, value = 5, 1, ctx.empty_value
        else:
            producer = min(a for a in self.keypairs if ctx.priority(a) is not None)
            carried = ledger.certificate_to_carry()
            block = proposed_block(
                r, ledger.tip_hash, ledger.tip_seed, producer, self.keypairs[producer],
                list(txs), carried, chain=self.chain,
            )  # fmt: skip
            step, b, value = 4, 0, (block.hash, producer)
        body = Certificate(r, step, b, *value, []).vote_signing_bytes(self.chain)
        votes = [(a, self.keypairs[a].sign(body)) for a in sorted(ctx.weights(step))]
        cert = Certificate(r, step, b, *value, votes)
        node._commit(block, cert)
        return block, cert

    def both(self, **options) -> None:
        block, cert = self.extend(self.a, **options)
        self.b._commit(block, cert)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path)
    try:
        yield p
    finally:
        p.close()


def part(pair: Pair) -> tuple[list[CertifiedBlock], list[CertifiedBlock]]:
    """Rounds 1-2 common; then a's chain: a block with transfers of accounts 1 and 2, then
    an empty block; b's chain: three blocks with transfers of account 3 (b's wins the fork
    choice: more non-empty blocks). Their blocks from round 3 on."""
    pair.both(txs=[pair.transfer(0)])
    pair.both(empty=True)
    ours = [pair.extend(pair.a, txs=[pair.transfer(1), pair.transfer(2)])]
    ours.append(pair.extend(pair.a, empty=True))
    theirs = [pair.extend(pair.b, txs=[pair.transfer(3)]) for _ in range(3)]
    return ours, theirs


def gc_signature(round: int, prev_hash: bytes) -> GcSignature:
    """A producer's step-1 message of `round` on the chain whose H(B_{round-1}) is
    `prev_hash` (the suspicion looks at nothing else; signatures are checked later)."""
    return GcSignature(
        round=round,
        step=1,
        sender=0,
        rand=bytes(64),
        block_hash=b"\x01" * 32,
        prev_hash=prev_hash,
        signature=bytes(64),
    )


def test_producer_messages_on_another_chain_raise_a_suspicion(pair: Pair) -> None:
    part(pair)
    a, b = pair.a, pair.b
    assert (a.ledger.tip, b.ledger.tip) == (4, 5)
    on_another = a._on_another_chain
    assert on_another(gc_signature(5, b.ledger.hash(4)))  # our next round, their chain
    assert not on_another(gc_signature(5, a.ledger.hash(4)))  # our next round, ours
    # a round we hold, from a peer behind us on another chain (new: the node ahead learns)
    assert on_another(gc_signature(4, b.ledger.hash(3)))
    assert not on_another(gc_signature(4, a.ledger.hash(3)))  # behind us on our chain
    assert not on_another(gc_signature(3, a.ledger.hash(2)))  # the common prefix
    assert not on_another(gc_signature(7, b.ledger.hash(5)))  # ahead: sync finds out
    # at or below the last final block nothing can be rolled back: no suspicion
    a.ledger.record_final(FinalCertificate(3, a.ledger.hash(3), ()))
    assert not on_another(gc_signature(3, b.ledger.hash(2)))
    assert on_another(gc_signature(4, b.ledger.hash(3)))


def test_the_node_on_the_losing_chain_switches_and_requeues_its_transactions(
    pair: Pair,
) -> None:
    ours, theirs = part(pair)
    a = pair.a
    returned = [tx.id for tx in ours[0][0].transactions]
    first = a.ledger.rollback_floor + 1
    peer_chain = [*pair.b.ledger.blocks_range(first, 2 - first + 1), *theirs]
    assert a._on_fork(None, peer_chain) is True  # type: ignore[arg-type]
    assert [a.ledger.hash(r) for r in range(3, 6)] == [blk.hash for blk, _ in theirs]
    assert a.counters["rollbacks"] == 1 and a.counters["rolled_back_blocks"] == 2
    assert [(f.round, f.ours.block_hash) for f in a.forks] == [(3, ours[0][0].hash)]
    assert a.halted is None
    # the transfers of the rolled-back block apply on the winning chain: queued again
    assert sorted(tx.id for tx in a.mempool.select(10)) == sorted(returned)
    assert a.counters["requeued_transactions"] == len(returned) == 2
    a.ledger.check_store()


def test_the_node_on_the_winning_chain_keeps_it_and_reports_the_fork(pair: Pair) -> None:
    ours, _ = part(pair)
    b = pair.b
    first = b.ledger.rollback_floor + 1
    peer_chain = [*pair.a.ledger.blocks_range(first, 2 - first + 1), *ours]
    assert b._on_fork(None, peer_chain) is False  # type: ignore[arg-type]
    assert b.ledger.tip == 5 and b.counters["rollbacks"] == 0
    # their certificate of the fork round passed in that round's context: evidence
    assert [(f.round, f.theirs.block_hash) for f in b.forks] == [(3, ours[0][0].hash)]


def test_a_made_up_chain_is_no_evidence(pair: Pair) -> None:
    ours, _ = part(pair)
    b = pair.b
    block, cert = ours[0]
    forged = Certificate(cert.round, cert.step, cert.b, cert.block_hash, cert.leader,
                         [(s, bytes(64)) for s, _ in cert.votes])  # fmt: skip
    first = b.ledger.rollback_floor + 1
    peer_chain = [*pair.a.ledger.blocks_range(first, 2 - first + 1), (block, forged), ours[1]]
    assert b._on_fork(None, peer_chain) is False  # type: ignore[arg-type]
    assert b.ledger.tip == 5 and list(b.forks) == [] and b.halted is None


def test_a_chain_parting_below_the_last_final_block_is_kept_out(pair: Pair) -> None:
    """It parted while our block there was tentative and can never reach our final round
    (docs/protocol.md §10): its owner is the one to switch; no halt."""
    ours, _ = part(pair)
    a = pair.a
    a.ledger.record_final(FinalCertificate(4, ours[1][0].hash, ()))
    for peer_chain in ([*pair.b.ledger.blocks_range(3, 3)], [*pair.b.ledger.blocks_range(4, 2)]):
        assert a._on_fork(None, peer_chain) is False  # type: ignore[arg-type]
        assert a.halted is None and a.ledger.tip == 4 and a.counters["rollbacks"] == 0


def final_proof(pair: Pair, node: Node, round: int, *, forged: bool = False) -> FinalProof:
    """Every member of the final committee of `round` on `node`'s chain votes its block."""
    ctx = tip_context(node.params, node.view, ledger_tip(node.ledger, node.params, round - 1))
    block_hash = node.ledger.hash(round)
    assert block_hash is not None
    votes = tuple(
        (a, sign_final(pair.keypairs[a], pair.chain, round, a, block_hash).signature)
        for a in sorted(ctx.weights(FINAL_STEP))
    )
    if forged:  # one signature of another block
        votes = ((votes[0][0], bytes(64)), *votes[1:])
    return FinalCertificate(round, block_hash, votes).proof()


def test_a_peers_final_block_wins_the_fork_choice_and_becomes_final_here(pair: Pair) -> None:
    """b's chain has more non-empty blocks (it wins the whitepaper's rule), but a's block
    of round 4 is final: b switches, and round 4 is final at b too."""
    ours, _ = part(pair)
    b = pair.b
    proof = final_proof(pair, pair.a, 4)
    peer_chain = [*pair.a.ledger.blocks_range(b.ledger.rollback_floor + 1, 4)]
    assert b._on_fork(None, peer_chain) is False  # type: ignore[arg-type]  # no proof: kept
    assert b._on_fork(None, peer_chain, proof) is True  # type: ignore[arg-type]
    assert [b.ledger.hash(r) for r in (3, 4)] == [blk.hash for blk, _ in ours]
    assert b.ledger.tip == 4 and b.ledger.final_round == 4 and b.counters["rollbacks"] == 1
    assert b.halted is None
    b.ledger.check_store()


def test_a_forged_final_proof_does_not_move_a_node(pair: Pair) -> None:
    _, theirs = part(pair)
    b = pair.b
    proof = final_proof(pair, pair.a, 4, forged=True)
    peer_chain = [*pair.a.ledger.blocks_range(b.ledger.rollback_floor + 1, 4)]
    assert b._on_fork(None, peer_chain, proof) is False  # type: ignore[arg-type]
    assert [b.ledger.hash(r) for r in (3, 4, 5)] == [blk.hash for blk, _ in theirs]
    assert b.ledger.final_round == 0 and b.halted is None
    assert b.counters["rollbacks"] == 0  # refused before anything was rolled back
    b.ledger.check_store()


def test_a_final_proof_too_light_on_their_chain_is_refused(pair: Pair) -> None:
    """Valid signatures, but of too little weight in round 4's final committee on that
    chain: b rolls back to judge it there, refuses it, and restores its own chain."""
    _, theirs = part(pair)
    b = pair.b
    real = FinalCertificate.from_proof(final_proof(pair, pair.a, 4))
    proof = FinalCertificate(4, real.block_hash, real.votes[:1]).proof()
    peer_chain = [*pair.a.ledger.blocks_range(b.ledger.rollback_floor + 1, 4)]
    assert b._on_fork(None, peer_chain, proof) is False  # type: ignore[arg-type]
    assert [b.ledger.hash(r) for r in (3, 4, 5)] == [blk.hash for blk, _ in theirs]
    assert b.ledger.final_round == 0 and b.counters["rollbacks"] == 1
    b.ledger.check_store()


def test_a_valid_certificate_against_a_final_block_halts(pair: Pair) -> None:
    ours, _ = part(pair)
    a = pair.a
    a.ledger.record_final(FinalCertificate(3, ours[0][0].hash, ()))
    assert a._on_fork(None, [*pair.b.ledger.blocks_range(3, 3)]) is False  # type: ignore[arg-type]
    assert a.halted is not None and "conflicts with our final block" in a.halted
    assert a.ledger.tip == 4 and a.counters["rollbacks"] == 0


def test_a_timer_of_the_core_before_a_switch_is_not_fed_to_the_new_one(pair: Pair) -> None:
    """After a switch the node runs a new core, which may be at the round number the old
    one ran: the old core's pending timers must not expire the new one's steps (its
    executor is retired: they find nothing)."""
    a = pair.a
    loop = asyncio.new_event_loop()
    try:
        a.host.start(loop)
        a.start_consensus()
        old = a.core
        a.start_consensus()  # what a switch or an unstick does: a new core, the same round
        new = a.core
        assert old is not None and new is not None and old is not new
        assert old.round is not None and new.round is not None
        assert old.current_round == new.current_round
        start = old.round.step
        p = DEVNET_PARAMS
        loop.run_until_complete(asyncio.sleep((p.lam_ms + p.big_lam_ms) / 1000 + 0.05))
        assert old.round.step == start  # its timers (due first) fed nothing
        assert new.round.step > start  # the same timers of the new one moved it on
    finally:
        loop.close()
