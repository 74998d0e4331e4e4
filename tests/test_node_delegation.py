"""A real node's core sees the ledger's delegates (docs/protocol.md §16), after a restart too."""

from __future__ import annotations

import hashlib
from pathlib import Path

from _chain import certificate, proposed_block

from echorand.config import NodeConfig
from echorand.consensus import ledger_delegates
from echorand.crypto import Keypair
from echorand.delegation import GcSubstitute
from echorand.events import Send, TimerKind
from echorand.genesis import create_devnet, node_keys_path
from echorand.keys import load_node_keys
from echorand.ledger import Ledger
from echorand.messages import Block
from echorand.node import Node
from echorand.round import Round
from echorand.transactions import delegation, transfer


def apply(ledger: Ledger, keypairs: dict[int, Keypair], producer: int | None, txs=()) -> None:
    """Append a certified block (empty when `producer` is None)."""
    if producer is None:
        block = Block.empty(ledger.tip + 1, ledger.tip_hash)
    else:
        block = proposed_block(
            ledger.tip + 1, ledger.tip_hash, ledger.tip_seed, producer, keypairs[producer], txs
        )
    ledger.apply(block, certificate(block, sorted(keypairs.items())[:3]))


def substituted(node: Node) -> set[tuple[int, int]]:
    """(principal, signer) of the explicit substitutes the node's core sends at the end of
    step 2 of the next round, no one else having spoken (every account holds seats)."""
    r = node.ledger.tip + 1
    ctx = node._ledger_tip().context(
        node.params, node.view.stake_table(r), ledger_delegates(node.view, r)
    )
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
    create_devnet(genesis_dir, accounts=8, nodes=2, seed="registrar", balance=1000)
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
        delegation(keypairs[1], keypairs[0].public_key, fee=0, nonce=0),  # node 1's to node 0's
        transfer(keypairs[2], newcomer.public_key, 300, fee=0, nonce=0),  # registrar: 2
        delegation(keypairs[3], keypairs[5].public_key, fee=0, nonce=0),  # stays at node 1
    ]
    apply(node.ledger, keypairs, 0, txs)
    r = node.ledger.tip + 1
    assert ledger_delegates(node.view, r)(1) is None  # round r: the records after block r - 2
    apply(node.ledger, keypairs, None)
    expected = {0: None, 1: 0, 2: None, 3: 5, 8: 2}

    def seen_by_the_core(node: Node) -> dict[int, int | None]:
        r = node.ledger.tip + 1
        ctx = node._ledger_tip().context(
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
