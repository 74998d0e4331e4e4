"""A 1 000 000-account devnet genesis: created, loaded, made into a ledger, reopened.

No timing is asserted (shared machine); `echorand bench ledger` reports the times.
"""

from __future__ import annotations

from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.keys import load_node_keys

ACCOUNTS = 1_000_000


def test_a_million_account_genesis_is_created_and_loaded(tmp_path):
    created = create_devnet(tmp_path / "g", accounts=ACCOUNTS, nodes=4, seed="million")
    genesis = Genesis.load(tmp_path / "g")
    assert genesis == created and genesis.count == ACCOUNTS
    keys = load_node_keys(node_keys_path(tmp_path / "g", 3))
    assert len(keys) == ACCOUNTS // 4 and keys.ids[-1] == ACCOUNTS - 1
    assert keys.keypair(len(keys) - 1).public_key == genesis.public_key(ACCOUNTS - 1)
    with Ledger.open(tmp_path / "ledger", genesis, durable=False) as ledger:
        assert len(ledger.state) == ACCOUNTS
    with Ledger.open(tmp_path / "ledger", genesis, durable=False) as ledger:
        assert ledger.state.total == genesis.total
        assert ledger.account_by_key(genesis.public_key(ACCOUNTS - 1)).id == ACCOUNTS - 1
        assert ledger.stake_table(1).total == genesis.total
        assert ledger.stored_records()[-56:] == ledger.state.records(ACCOUNTS - 1)
