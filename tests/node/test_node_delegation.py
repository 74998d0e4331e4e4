"""A real node's core sees the ledger's delegates (docs/protocol.md §16), after a restart too."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from _chain import certificate, proposed_block

from echorand.core.consensus import ledger_delegates
from echorand.core.events import Send, TimerKind
from echorand.core.round import Round
from echorand.ledger.ledger import Ledger
from echorand.node.config import NodeConfig
from echorand.node.node import Node
from echorand.node.view import ledger_tip
from echorand.protocol.certificate import CertificateError, check_certificate
from echorand.protocol.delegation import GcSubstitute, Mode
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.crypto import Keypair
from echorand.wire.keys import load_node_keys
from echorand.wire.messages import NO_LEADER, Block, Certificate
from echorand.wire.transactions import delegation, transfer


def apply(ledger: Ledger, keypairs: dict[int, Keypair], producer: int | None, txs=()) -> None:
    """Append a certified block (empty when `producer` is None)."""
    if producer is None:
        block = Block.empty(ledger.tip + 1, ledger.tip_hash)
    else:
        block = proposed_block(
            ledger.tip + 1,
            ledger.tip_hash,
            ledger.tip_seed,
            producer,
            keypairs[producer],
            txs,
            chain=ledger.genesis.hash,
        )
    ledger.apply(block, certificate(block, sorted(keypairs.items())[:3], chain=ledger.genesis.hash))


def substituted(node: Node) -> set[tuple[int, int]]:
    """(principal, signer) of the explicit substitutes the node's core sends at the end of
    step 2 of the next round, no one else having spoken (every account holds seats)."""
    ctx = node.round_context(node.ledger.tip + 1)
    assert set(ctx.weights(2)) >= {1, 8}
    rnd = Round(ctx, node.keys, 0, lambda r: ())
    rnd.start()
    rnd.drain()
    rnd.on_timer(2, TimerKind.LEADER, 200)
    rnd.on_timer(2, TimerKind.DEADLINE, 400)
    sent = [a.message for a in rnd.drain() if isinstance(a, Send)]
    return {(m.principal, m.sender) for m in sent if isinstance(m, GcSubstitute)}


def test_a_node_acts_for_the_principals_that_delegated_to_its_accounts(tmp_path: Path) -> None:
    genesis_dir = tmp_path / "genesis"
    chain = create_devnet(genesis_dir, accounts=8, nodes=2, seed="registrar", balance=1000).hash
    keypairs: dict[int, Keypair] = {}
    for n in range(2):
        keypairs.update(load_node_keys(node_keys_path(genesis_dir, n)).keypairs())
    config = NodeConfig(
        data_dir=tmp_path / "node0", genesis=genesis_dir, keys=node_keys_path(genesis_dir, 0)
    )
    newcomer = Keypair.from_seed(hashlib.sha256(b"newcomer").digest())
    node = Node(config)
    assert sorted(node.keys) == [0, 2, 4, 6]
    txs = [
        delegation(
            keypairs[1], keypairs[0].public_key, fee=0, nonce=0, chain=chain
        ),  # node 1's to node 0's
        transfer(
            keypairs[2], newcomer.public_key, 300, fee=0, nonce=0, chain=chain
        ),  # registrar: 2
        delegation(
            keypairs[3], keypairs[5].public_key, fee=0, nonce=0, chain=chain
        ),  # stays at node 1
    ]
    apply(node.ledger, keypairs, 0, txs)
    r = node.ledger.tip + 1
    assert ledger_delegates(node.view, r)(1) is None  # round r: the records after block r - 2
    apply(node.ledger, keypairs, None)
    expected = {0: None, 1: 0, 2: None, 3: 5, 8: 2}

    def seen_by_the_core(node: Node) -> dict[int, int | None]:
        r = node.ledger.tip + 1
        ctx = ledger_tip(node.ledger, node.params).context(
            node.params, node.view.stake_table(r), ledger_delegates(node.view, r)
        )
        assert ctx.substitutes
        return {p: ctx.delegate(p) for p in expected}

    assert seen_by_the_core(node) == expected
    assert substituted(node) == {(1, 0), (8, 2)}, "for 1 (explicit) and 8 (its registrar)"
    node.ledger.close()
    restarted = Node(config)
    try:
        assert restarted.ledger.tip == 2
        assert seen_by_the_core(restarted) == expected
        assert substituted(restarted) == {(1, 0), (8, 2)}
    finally:
        restarted.ledger.close()


def substituted_certificate(
    block: Block,
    ctx_weights: dict[int, int],
    keypairs: dict[int, Keypair],
    signer: int,
    of: int,
    chain: bytes,
) -> Certificate:
    """A step-5 certificate of the empty `block`: every member of A_5 votes, `of` through
    an explicit substitute signed by `signer`."""
    r = block.round
    unsigned = Certificate(r, 5, 1, block.hash, NO_LEADER, [])
    body = unsigned.vote_signing_bytes(chain)
    own = [(a, keypairs[a].sign(body)) for a in sorted(ctx_weights) if a != of]
    sig = keypairs[signer].sign(unsigned.substitute_signing_bytes(chain, of, Mode.EXPLICIT))
    subs = ((of, signer, Mode.EXPLICIT, sig),)
    return Certificate(r, 5, 1, block.hash, NO_LEADER, own, substitutes=subs)


def test_a_synced_certificate_is_checked_with_the_ledgers_delegates(tmp_path: Path) -> None:
    """Before consensus runs, a synced block's certificate is checked in the node's context
    of its round, delegates included: a substitute by the principal's delegate passes,
    one by another account does not."""
    genesis_dir = tmp_path / "genesis"
    chain = create_devnet(genesis_dir, accounts=8, nodes=2, seed="registrar", balance=1000).hash
    keypairs: dict[int, Keypair] = {}
    for n in range(2):
        keypairs.update(load_node_keys(node_keys_path(genesis_dir, n)).keypairs())
    node = Node(NodeConfig(data_dir=tmp_path / "node0", genesis=genesis_dir))
    try:
        delegate = delegation(keypairs[1], keypairs[0].public_key, fee=0, nonce=0, chain=chain)
        apply(node.ledger, keypairs, 0, [delegate])
        apply(node.ledger, keypairs, None)
        block = Block.empty(3, node.ledger.tip_hash)
        ctx = node.round_context(3)
        weights = dict(ctx.weights(5))
        assert weights.get(1, 0) > 0
        right = substituted_certificate(block, weights, keypairs, signer=0, of=1, chain=chain)
        check_certificate(right, block, ctx, node.view.public_key, node.verifier)
        wrong = substituted_certificate(block, weights, keypairs, signer=2, of=1, chain=chain)
        with pytest.raises(CertificateError, match="2 may not speak for 1"):
            check_certificate(wrong, block, ctx, node.view.public_key, node.verifier)
        assert not node._sync_apply(block, wrong)
        assert node.ledger.tip == 2
        assert node._sync_apply(block, right)  # stored with its substitute section
        assert node.ledger.tip == 3
        assert node.ledger.certificate(3) == right
        assert node.ledger.certificate(3).substitutes == right.substitutes != ()
    finally:
        node.ledger.close()
