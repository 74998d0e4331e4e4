"""Block rewards in the ledger (docs/protocol.md §16): every minted unit accounted for,
minted in the block's commit, and the blocks that must carry CERT_{r-1}."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from _chain import certificate, proposed_block

from echorand.core.consensus import Tip
from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger, LedgerError
from echorand.node.view import ledger_tip
from echorand.protocol.params import Params, Rewards
from echorand.protocol.sortition import verifiers
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.crypto import Keypair
from echorand.wire.keys import load_node_keys
from echorand.wire.messages import NO_LEADER, Block, Certificate
from echorand.wire.transactions import transfer

REWARDS = Rewards(floor=1_000, ceiling=9_000, window=4, decay=1, producer_share=25)
PARAMS = Params(n_g=5, n_c=40, rewards=REWARDS, insecure_committee=True)
ACCOUNTS = 8


class Chain:
    """A genesis with rewards, its keys, and a ledger to append blocks to."""

    def __init__(self, path: Path, rewards: Rewards = REWARDS, balance: int = 10**6) -> None:
        params = Params(n_g=5, n_c=40, rewards=rewards, insecure_committee=True)
        self.path = path
        self.genesis = create_devnet(
            path / "genesis", accounts=ACCOUNTS, nodes=1, seed="rewards",
            balance=balance, params=params,
        )  # fmt: skip
        keys = load_node_keys(node_keys_path(path / "genesis", 0))
        self.keypairs: list[Keypair] = [kp for _, kp in keys.keypairs()]
        self.ledger = Ledger.open(path / "ledger", self.genesis)

    def block(self, producer: int | None, txs=(), carried: Certificate | str | None = "own"):
        ledger = self.ledger
        r = ledger.tip + 1
        if producer is None:
            return Block.empty(r, ledger.tip_hash)
        prev_cert = ledger.certificate_to_carry() if carried == "own" else carried
        kp = self.keypairs[producer]
        chain = self.genesis.hash
        return proposed_block(
            r, ledger.tip_hash, ledger.tip_seed, producer, kp, txs, prev_cert, chain=chain
        )

    def certify(self, block: Block, signers: list[int]) -> Certificate:
        return certificate(block, [(i, self.keypairs[i]) for i in signers], chain=self.genesis.hash)

    def append(self, producer: int | None, signers: list[int], txs=()):
        block = self.block(producer, txs)
        return self.ledger.apply(block, self.certify(block, signers))


@pytest.fixture
def chain(tmp_path: Path):
    c = Chain(tmp_path)
    yield c
    c.ledger.close()


def balances(ledger: Ledger) -> list[int]:
    return [ledger.account(i).balance for i in range(len(ledger.state))]


def seats(ledger: Ledger, round: int, step: int) -> Counter[int]:
    """A_step of `round` by the sortition, counted independently of the ledger's helper."""
    table = ledger.stake_table(round)
    return Counter(verifiers(table, ledger.seed(round - 1), round, step, PARAMS.n_c))


def level_model(history: list[bool]) -> list[int]:
    """R_1..R_n for a chain whose block r is empty when history[r-1]: the formula, written out."""
    f, c, w = REWARDS.floor, REWARDS.ceiling, REWARDS.window
    levels, level = [], f
    for r in range(1, len(history) + 1):
        empties = sum(history[max(0, r - 1 - w) : r - 1])
        target = f + (c - f) * empties // w
        gap = level - f
        level = max(target, level - (gap + 2**REWARDS.decay - 1) // 2**REWARDS.decay)
        levels.append(level)
    return levels


def test_a_new_ledger_has_minted_nothing(chain) -> None:
    assert chain.ledger.minted == 0 and chain.ledger.reward_level == REWARDS.floor
    assert chain.ledger.supply == chain.genesis.total


def test_the_producer_is_paid_at_once_the_verifiers_with_the_next_block(chain) -> None:
    ledger = chain.ledger
    before = balances(ledger)
    changes = chain.append(3, [0, 1, 2, 4, 5, 6])
    producer_units = REWARDS.floor * 25 // 100
    assert changes.minted == producer_units == ledger.minted
    assert balances(ledger)[3] == before[3] + producer_units
    cert1 = ledger.certificate(1)
    committee = seats(ledger, 1, cert1.step)
    before = balances(ledger)
    block2 = chain.block(5)
    assert block2.prev_cert == cert1
    changes = ledger.apply(block2, chain.certify(block2, [0, 1]))
    pool = REWARDS.floor - producer_units
    signer_seats = {s: committee[s] for s in cert1.signers}
    total = sum(signer_seats.values())
    expected = {s: pool * n // total for s, n in signer_seats.items()}
    expected[5] = expected.get(5, 0) + producer_units
    after = balances(ledger)
    assert {i: after[i] - before[i] for i in range(ACCOUNTS) if after[i] != before[i]} == {
        i: u for i, u in expected.items() if u
    }
    assert changes.minted == sum(expected.values())
    assert ledger.supply == chain.genesis.total + ledger.minted


def test_an_empty_block_mints_nothing_and_its_successor_pays_no_verifiers(chain) -> None:
    ledger = chain.ledger
    assert chain.append(None, [0, 1]).minted == 0
    assert ledger.minted == 0
    block = chain.block(2)
    assert block.prev_cert is None
    changes = ledger.apply(block, chain.certify(block, [0, 1]))
    level = ledger.reward_level
    assert level > REWARDS.floor  # one empty block in the window of 4
    assert changes.minted == level * 25 // 100


def test_a_proposed_block_after_an_empty_one_pays_no_verifiers_of_the_empty(chain) -> None:
    chain.append(1, [0, 2, 3])
    chain.append(None, [0, 2, 3])  # the pool of block 1 is never minted: block 2 is empty
    minted = chain.ledger.minted
    changes = chain.append(4, [0, 2, 3])
    assert changes.minted == chain.ledger.reward_level * 25 // 100
    assert chain.ledger.minted == minted + changes.minted


def test_a_fallback_vote_pays_its_signer_an_explicit_one_its_principal(chain) -> None:
    ledger = chain.ledger
    chain.append(3, [])
    block1 = ledger.block(1)
    committee = seats(ledger, 1, 4)
    own, explicit, fallback = sorted(committee)[:3]
    producer = 6
    delegate = next(a for a in range(ACCOUNTS) if a not in (own, explicit, fallback, producer))
    value = (block1.hash, block1.producer)
    blank = Certificate(1, 4, 0, *value, [])
    votes = [(own, chain.keypairs[own].sign(blank.vote_signing_bytes(chain.genesis.hash)))]
    subs = [
        (p, s, m, chain.keypairs[s].sign(blank.substitute_signing_bytes(chain.genesis.hash, p, m)))
        for p, s, m in sorted([(explicit, delegate, 1), (fallback, own, 2)])
    ]
    cert1 = Certificate(1, 4, 0, *value, votes, subs)
    before = balances(ledger)
    block2 = chain.block(producer, carried=cert1)
    ledger.apply(block2, chain.certify(block2, [0]))
    pool = REWARDS.floor - REWARDS.floor * 25 // 100
    total = committee[own] + committee[explicit] + committee[fallback]
    gained = [b - a for a, b in zip(before, balances(ledger), strict=True)]
    # own voted itself and signed as the offline fallback's substitute: paid for both seats.
    assert gained[own] == pool * (committee[own] + committee[fallback]) // total
    # explicit delegated to `delegate`: the principal earns, the delegate does not.
    assert gained[explicit] == pool * committee[explicit] // total
    assert gained[delegate] == 0 and gained[fallback] == 0


def test_rewards_add_up_to_what_was_minted(tmp_path) -> None:
    """A random chain of empty and proposed blocks with transfers: after every block the
    balances sum to the genesis total plus what was minted, and every account holds what an
    independent model of transfers, fees, producer rewards and verifier splits says."""
    chain = Chain(tmp_path)
    ledger = chain.ledger
    rng = random.Random(7)
    model = balances(ledger)
    nonces = [0] * ACCOUNTS
    history: list[bool] = []
    minted = 0
    with ledger:
        for r in range(1, 41):
            empty = rng.random() < 0.3
            history.append(empty)
            level = level_model(history)[-1]
            signers = sorted(rng.sample(range(ACCOUNTS), rng.randint(1, ACCOUNTS)))
            if empty:
                ledger.apply(chain.block(None), chain.certify(chain.block(None), signers))
                assert ledger.reward_level == level
                continue
            producer = rng.randrange(ACCOUNTS)
            txs = []
            for _ in range(rng.randint(0, 3)):
                sender, recipient = rng.sample(range(ACCOUNTS), 2)
                amount, fee = rng.randint(1, 500), rng.randint(0, 9)
                kp = chain.keypairs[sender]
                txs.append(
                    transfer(
                        kp,
                        ledger.account(recipient).public_key,
                        amount,
                        fee=fee,
                        nonce=nonces[sender],
                        chain=chain.genesis.hash,
                    )
                )
                nonces[sender] += 1
                model[sender] -= amount + fee
                model[recipient] += amount
                model[producer] += fee
            block = chain.block(producer, txs)
            expected = {producer: level * 25 // 100}
            carried = block.prev_cert
            if carried is not None:
                prev_level = level_model(history[:-1])[-1]
                pool = prev_level - prev_level * 25 // 100
                committee = seats(ledger, r - 1, carried.step)
                weights = {s: committee[s] for s in carried.signers if committee[s]}
                total = sum(weights.values())
                for s, n in weights.items():
                    expected[s] = expected.get(s, 0) + pool * n // total
            changes = ledger.apply(block, chain.certify(block, signers))
            for account, units in expected.items():
                model[account] += units
            minted += sum(expected.values())
            assert changes.minted == sum(expected.values())
            assert ledger.reward_level == level
            assert balances(ledger) == model
            assert ledger.minted == minted
            assert sum(balances(ledger)) == ledger.supply == chain.genesis.total + minted
        assert any(history) and not all(history)
        ledger.check_store()
    with Ledger.open(tmp_path / "ledger", chain.genesis) as reopened:
        assert reopened.minted == minted and reopened.reward_level == level_model(history)[-1]
        assert balances(reopened) == model
        reopened.check_store()


def test_without_rewards_nothing_is_minted(tmp_path) -> None:
    chain = Chain(tmp_path, rewards=Rewards())
    with chain.ledger:
        for producer in (1, None, 2, 3):
            assert chain.append(producer, [0, 1]).minted == 0
        assert chain.ledger.minted == 0 and chain.ledger.supply == chain.genesis.total


def test_minting_stops_short_of_a_supply_of_2_63(tmp_path) -> None:
    rewards = Rewards(floor=2**40, ceiling=2**40)
    balance = (2**63 - 2**41) // ACCOUNTS
    chain = Chain(tmp_path, rewards=rewards, balance=balance)
    with chain.ledger:
        minted = [chain.append(p, [0, 1]).minted for p in (1, 2, 3, 4)]
        assert minted[0] > 0 and 0 in minted
        assert chain.ledger.supply < 2**63
        assert chain.ledger.supply == chain.genesis.total + chain.ledger.minted


# --- which blocks carry a certificate ----------------------------------------------------


def test_a_block_after_a_proposed_one_must_carry_its_certificate(chain) -> None:
    ledger = chain.ledger
    chain.append(1, [0, 1])
    bare = chain.block(2, carried=None)
    with pytest.raises(LedgerError, match="block 2: does not carry the certificate of block 1"):
        ledger.apply(bare, chain.certify(bare, [0]))
    wrong = Certificate(1, 5, 1, bytes(32), NO_LEADER, [])
    odd = chain.block(2, carried=wrong)
    with pytest.raises(
        LedgerError, match="block 2: the certificate it carries is for round 1, b=1"
    ):
        ledger.apply(odd, chain.certify(odd, [0]))
    assert ledger.tip == 1 and ledger.minted == REWARDS.floor * 25 // 100


def test_a_block_after_the_empty_block_carries_nothing(chain) -> None:
    chain.append(1, [0, 1])
    cert1 = chain.ledger.certificate(1)
    chain.append(None, [0, 1])
    block = chain.block(2, carried=cert1)
    with pytest.raises(LedgerError, match="block 3: carries a certificate, but block 2 is empty"):
        chain.ledger.apply(block, chain.certify(block, [0]))


def test_the_genesis_rewards_must_match_the_ledger(tmp_path) -> None:
    chain = Chain(tmp_path)
    chain.ledger.close()
    other = Genesis(
        name=chain.genesis.name,
        params=Params(n_g=5, n_c=40, rewards=Rewards(floor=1, ceiling=2), insecure_committee=True),
        seed=chain.genesis.seed,
        accounts=chain.genesis.accounts,
    )
    with pytest.raises(LedgerError, match="the ledger was made from genesis"):
        Ledger.open(tmp_path / "ledger", other)


# --- a restarted node sees the tip the core had -----------------------------------------


@pytest.mark.parametrize("policy", ["sortition", "round-robin"])
def test_the_tip_read_from_the_ledger_is_the_one_the_core_builds(tmp_path, policy) -> None:
    """What a node restarts from (`ledger_tip`) equals `Tip.after` folded over the chain:
    the certificate the next block must carry, the tip before it, authors and producers."""
    chain = Chain(tmp_path)
    params = Params(n_g=5, n_c=40, rewards=REWARDS, proposer_policy=policy,
                    validators=0 if policy == "sortition" else 4)  # fmt: skip
    genesis = chain.genesis
    tip = Tip(0, genesis.seed, genesis.hash)
    rng = random.Random(3)
    with chain.ledger as ledger:
        assert ledger_tip(ledger, params) == tip
        for _ in range(12):
            producer = None if rng.random() < 0.3 else rng.randrange(4)
            block = chain.block(producer)
            cert = chain.certify(block, [0, 1, 2])
            ledger.apply(block, cert)
            tip = tip.after(block, params, cert)
            assert ledger_tip(ledger, params) == tip
