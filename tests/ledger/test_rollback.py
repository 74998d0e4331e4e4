"""Rolling the ledger back to a fork point and applying the other branch (PROTOCOL §6): the
state equals a fresh replay of the winning chain — balances, nonces, delegates, created
accounts, stake snapshots, the reward level, the minted units, the supply — and nothing at or
below the last final block is ever rolled back."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from _chain import certificate, proposed_block

from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger, LedgerError
from echorand.protocol.finality import FinalCertificate
from echorand.protocol.params import Params, Rewards
from echorand.protocol.sortition import StakeTable
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.crypto import Keypair
from echorand.wire.keys import load_node_keys
from echorand.wire.messages import Block
from echorand.wire.transactions import delegation, transfer

ACCOUNTS = 10
PARAMS = Params(rewards=Rewards(floor=50, ceiling=500, window=8, decay=2))


class World:
    """A genesis with rewards, its keys, and blocks made at random on a ledger."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.genesis: Genesis = create_devnet(
            path / "genesis", accounts=ACCOUNTS, nodes=1, seed="rollback", params=PARAMS
        )
        self.keypairs = [
            kp for _, kp in load_node_keys(node_keys_path(path / "genesis", 0)).keypairs()
        ]
        self.extra = [
            Keypair.from_seed(hashlib.sha256(b"rollback new %d" % i).digest()) for i in range(6)
        ]

    def open(self, name: str, undo_rounds: int = 64) -> Ledger:
        return Ledger.open(self.path / name, self.genesis, undo_rounds=undo_rounds)

    def random_block(self, ledger: Ledger, rng: random.Random) -> tuple[Block, object]:
        r = ledger.tip + 1
        chain = self.genesis.hash
        if rng.random() < 0.2:
            block = Block.empty(r, ledger.tip_hash)
        else:
            txs = []
            senders = [
                (kp, ledger.account_by_key(kp.public_key)) for kp in self.keypairs + self.extra
            ]
            senders = [(kp, a) for kp, a in senders if a is not None and a.balance > 10]
            for kp, account in rng.sample(senders, min(4, len(senders))):
                to = rng.choice(self.keypairs + self.extra).public_key
                if to == kp.public_key:
                    continue
                if rng.random() < 0.25 and ledger.account_by_key(to) is not None:
                    tx = delegation(kp, to, fee=1, nonce=account.nonce, chain=chain)
                else:
                    amount = rng.randint(1, max(1, account.balance // 4))
                    tx = transfer(kp, to, amount, fee=1, nonce=account.nonce, chain=chain)
                txs.append(tx)
            producer = rng.randrange(ACCOUNTS)
            block = proposed_block(
                r,
                ledger.tip_hash,
                ledger.tip_seed,
                producer,
                self.keypairs[producer],
                txs,
                ledger.certificate_to_carry(),
                chain=chain,
            )
        cert = certificate(block, list(enumerate(self.keypairs[:3])), chain=self.genesis.hash)
        return block, cert


def balances(table: StakeTable) -> list[int]:
    return [table.balance(i) for i in range(len(table))]


def snapshot(ledger: Ledger) -> dict[str, object]:
    """Everything a rollback must restore, read back from the ledger."""
    ledger.check_store()
    tip = ledger.tip
    return {
        "tip": tip,
        "hash": ledger.tip_hash,
        "seed": ledger.tip_seed,
        "records": ledger.stored_records(),
        "supply": ledger.supply,
        "minted": ledger.minted,
        "level": ledger.reward_level,
        "hashes": [ledger.hash(r) for r in range(tip + 1)],
        "stake": [balances(ledger.stake_table(r)) for r in range(max(1, tip - 3), tip + 3)],
        "delegates": [
            [ledger.delegate(r, a) for a in range(ACCOUNTS + 6)]
            for r in range(max(1, tip - 3), tip + 3)
        ],
        "carry": ledger.certificate_to_carry(),
    }


@pytest.mark.parametrize("seed", range(6))
def test_rollback_then_the_other_branch_equals_a_fresh_replay(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    world = World(tmp_path)
    length = rng.randint(4, 12)
    depth = rng.randint(1, length)
    fork = length - depth
    with world.open("a") as a:
        trunk = []
        for _ in range(length):
            block, cert = world.random_block(a, rng)
            a.apply(block, cert)
            trunk.append((block, cert))
        removed = a.rollback(fork)
        assert [b.round for b in removed] == list(range(fork + 1, length + 1))
        assert [b.hash for b in removed] == [b.hash for b, _ in trunk[fork:]]
        # the other branch, built on the rolled-back ledger
        branch = []
        for _ in range(rng.randint(1, depth + 3)):
            block, cert = world.random_block(a, rng)
            a.apply(block, cert)
            branch.append((block, cert))
        after_rollback = snapshot(a)
    with world.open("b") as b:  # a fresh replay of the winning chain
        for block, cert in [*trunk[:fork], *branch]:
            b.apply(block, cert)
        assert snapshot(b) == after_rollback
    with world.open("a") as a:  # and the rolled-back ledger reopens to the same state
        assert snapshot(a) == after_rollback


def test_no_rollback_at_or_below_the_last_final_block(tmp_path: Path) -> None:
    rng = random.Random(1)
    world = World(tmp_path)
    with world.open("a", undo_rounds=4) as ledger:
        for _ in range(6):
            ledger.apply(*world.random_block(ledger, rng))
        final = FinalCertificate(3, ledger.hash(3), ())
        ledger.record_final(final)  # the caller checks the votes; the ledger keeps the proof
        assert ledger.final_round == 3 and ledger.is_final(2) and not ledger.is_final(4)
        with pytest.raises(LedgerError, match="from the last final block"):
            ledger.rollback(2)
        with pytest.raises(LedgerError, match="is for"):
            ledger.record_final(FinalCertificate(4, bytes(32), ()))
        with pytest.raises(LedgerError, match="undo records reach back to 4"):
            ledger.rollback(3)  # its stake tables would need the undo record of block 2
        ledger.rollback(4)
        assert ledger.tip == 4
    with world.open("a", undo_rounds=4) as ledger:
        assert ledger.final_round == 3 and ledger.final_certificate(3) == final
        for _ in range(6):
            ledger.apply(*world.random_block(ledger, rng))
        with pytest.raises(LedgerError, match="undo records reach back"):
            ledger.rollback(4)  # 6 blocks back, 4 undo records
