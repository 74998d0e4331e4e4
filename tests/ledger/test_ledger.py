"""The LMDB ledger: apply and reopen, refusals, stake tables per PROTOCOL §3, crash safety."""

from __future__ import annotations

import contextlib
import hashlib
import random
import signal
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest
from _chain import certificate, proposed_block
from _ledger_model import Model
from _sortition_model import model_committee, model_weights

from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger, LedgerError
from echorand.protocol.seeds import next_seed
from echorand.protocol.sortition import StakeTable
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.crypto import Keypair
from echorand.wire.keys import load_node_keys
from echorand.wire.messages import NO_LEADER, Block, Certificate
from echorand.wire.transactions import delegation, transfer

WRITER = Path(__file__).parents[1] / "_crash_writer.py"
KILLS = 15


class Net:
    """A small devnet: its genesis, the key pair of each account, a place for ledgers."""

    def __init__(self, path: Path, accounts: int = 8, balance: int = 1000) -> None:
        self.path = path
        self.genesis = create_devnet(
            path / "genesis", accounts=accounts, nodes=1, seed="ledger", balance=balance
        )
        keys = load_node_keys(node_keys_path(path / "genesis", 0))
        self.keypairs = [kp for _, kp in keys.keypairs()]
        self.keys = [kp.public_key for kp in self.keypairs]
        self.chain = self.genesis.hash

    def open(self, name: str = "ledger", **options) -> Ledger:
        return Ledger.open(self.path / name, self.genesis, **options)

    def block(self, ledger: Ledger, producer: int, txs=()) -> Block:
        r = ledger.tip + 1
        kp = self.keypairs[producer]
        carried = ledger.certificate_to_carry()
        return proposed_block(
            r, ledger.tip_hash, ledger.tip_seed, producer, kp, txs, carried, chain=self.chain
        )

    def certify(self, block: Block) -> Certificate:
        return certificate(block, list(enumerate(self.keypairs[:3])), chain=self.chain)

    def apply(self, ledger: Ledger, producer: int | None, txs=()):
        if producer is None:
            block = Block.empty(ledger.tip + 1, ledger.tip_hash)
        else:
            block = self.block(ledger, producer, txs)
        return ledger.apply(block, self.certify(block))


@pytest.fixture
def net(tmp_path: Path) -> Net:
    return Net(tmp_path)


def balances(table: StakeTable) -> list[int]:
    return [table.balance(i) for i in range(len(table))]


# --- open, apply, reopen ---------------------------------------------------------------


def test_a_new_ledger_holds_the_genesis(net):
    with net.open() as ledger:
        assert ledger.tip == 0
        assert ledger.hash(0) == ledger.tip_hash == net.genesis.hash
        assert ledger.seed(0) == ledger.tip_seed == net.genesis.seed
        assert ledger.block(0) is None and ledger.block(1) is None
        assert len(ledger.state) == 8 and ledger.state.total == 8000
        assert ledger.account(3).public_key == net.keys[3]
        assert ledger.account_by_key(net.keys[5]).id == 5
        assert ledger.account(8) is None
        ledger.check_store()


def test_blocks_apply_and_survive_a_reopen(net):
    newcomer = Keypair.from_seed(bytes(32)).public_key
    with net.open() as ledger:
        txs = [
            transfer(net.keypairs[0], net.keys[1], 100, fee=5, nonce=0, chain=net.chain),
            transfer(net.keypairs[0], newcomer, 50, fee=1, nonce=1, chain=net.chain),
            delegation(net.keypairs[2], net.keys[3], fee=2, nonce=0, chain=net.chain),
        ]
        changes = net.apply(ledger, 4, txs)
        assert (changes.tx_count, changes.fees) == (3, 8)
        net.apply(ledger, None)
        net.apply(
            ledger, 1, [transfer(net.keypairs[1], net.keys[0], 7, fee=0, nonce=0, chain=net.chain)]
        )
        expected = [
            (ledger.block(r), ledger.certificate(r), ledger.seed(r), ledger.hash(r))
            for r in range(4)
        ]
        records = ledger.state.records()
    with net.open() as ledger:
        assert ledger.tip == 3
        assert ledger.state.records() == records
        assert [
            (ledger.block(r), ledger.certificate(r), ledger.seed(r), ledger.hash(r))
            for r in range(4)
        ] == expected
        assert ledger.account(0).balance == 1000 - 100 - 5 - 50 - 1 + 7
        assert ledger.account(0).nonce == 2
        assert ledger.account(2).delegate == 3
        assert ledger.account(4).balance == 1000 + 8
        assert ledger.account_by_key(newcomer).id == 8
        ledger.check_store()


def test_seeds_follow_the_blocks(net):
    with net.open() as ledger:
        q0 = ledger.tip_seed
        block = net.block(ledger, 2)
        ledger.apply(block, net.certify(block))
        assert ledger.seed(1) == next_seed(q0, 1, block.seed_sig)
        net.apply(ledger, None)
        assert ledger.seed(2) == hashlib.sha256(ledger.seed(1) + (2).to_bytes(8, "big")).digest()


def test_recent_authors_skip_empty_blocks_and_survive_a_reopen(net):
    with net.open() as ledger:
        assert ledger.recent_authors(3) == ()
        for producer in (4, None, 1, 6, None, None, 2):
            net.apply(ledger, producer)
        assert ledger.recent_authors(3) == (1, 6, 2)
        assert ledger.recent_authors(0) == ()
    with net.open() as ledger:
        assert ledger.recent_authors(10) == (4, 1, 6, 2)


def test_blocks_range_serves_certified_blocks_for_sync(net):
    with net.open() as ledger:
        for r in range(1, 6):
            net.apply(ledger, None if r % 2 else r)
        pairs = ledger.blocks_range(2, 3)
        assert [b.round for b, _ in pairs] == [2, 3, 4]
        assert all(c.round == b.round for b, c in pairs)
        assert pairs[0] == (ledger.block(2), ledger.certificate(2))
        assert [b.round for b, _ in ledger.blocks_range(4, 100)] == [4, 5]
        assert ledger.blocks_range(6, 3) == [] and ledger.blocks_range(1, 0) == []
        assert ledger.encoded_blocks(1, 1) == [
            (ledger.block(1).encode(), ledger.certificate(1).encode())
        ]


# --- refusals --------------------------------------------------------------------------


def test_a_block_must_extend_the_tip(net):
    with net.open() as ledger:
        wrong_round = Block.empty(2, ledger.tip_hash)
        with pytest.raises(LedgerError, match="block of round 2: the ledger's next round is 1"):
            ledger.apply(wrong_round, net.certify(wrong_round))
        wrong_prev = Block.empty(1, bytes(32))
        with pytest.raises(LedgerError, match="block 1: prev_hash 0000"):
            ledger.apply(wrong_prev, net.certify(wrong_prev))
        assert ledger.tip == 0


def test_the_certificate_must_be_for_this_round_and_block(net):
    with net.open() as ledger:
        block = net.block(ledger, 1)
        other = net.block(ledger, 2)
        empty = Block.empty(1, ledger.tip_hash)
        late = Certificate(2, 4, 0, block.hash, 1, [])
        with pytest.raises(LedgerError, match="the certificate is for round 2"):
            ledger.apply(block, late)
        with pytest.raises(LedgerError, match="not this block"):
            ledger.apply(block, net.certify(other))
        with pytest.raises(LedgerError, match="not this block"):
            ledger.apply(block, net.certify(empty))
        with pytest.raises(LedgerError, match="not for the empty block of this round"):
            ledger.apply(empty, net.certify(block))
        # b = 1 with the empty value of another round, or another fork, certifies nothing
        other_fork = Block.empty(1, bytes(32))
        with pytest.raises(LedgerError, match="not for the empty block of this round"):
            ledger.apply(empty, Certificate(1, 5, 1, other_fork.hash, NO_LEADER, []))
        ledger.apply(empty, net.certify(empty))
        assert ledger.tip == 1


def test_a_block_with_a_refused_transaction_changes_nothing(net):
    with net.open() as ledger:
        good = transfer(net.keypairs[0], net.keys[1], 10, fee=0, nonce=0, chain=net.chain)
        broke = transfer(net.keypairs[2], net.keys[1], 5000, fee=0, nonce=0, chain=net.chain)
        block = net.block(ledger, 3, [good, broke])
        with pytest.raises(LedgerError, match="block 1: transaction 1: insufficient balance"):
            ledger.apply(block, net.certify(block))
        assert ledger.tip == 0 and ledger.account(0).balance == 1000
        ledger.check_store()
        net.apply(ledger, 3, [good])
        assert ledger.account(0).balance == 990


def test_a_ledger_from_another_genesis_is_refused(net, tmp_path):
    net.open().close()
    other = create_devnet(tmp_path / "other", accounts=8, nodes=1, seed="other")
    with pytest.raises(LedgerError, match=r"made from genesis .* not"):
        Ledger.open(net.path / "ledger", other)


def test_one_process_at_a_time(net):
    with net.open(), pytest.raises(LedgerError, match="open in another process"):
        net.open()


def test_a_full_map_grows(net):
    big = Net(net.path / "big", accounts=2000)
    with big.open(map_size=64 << 10) as ledger:
        for r in range(1, 4):
            txs = [
                transfer(big.keypairs[i], big.keys[i + 1], 1, fee=0, nonce=0, chain=big.chain)
                for i in range(r, 1500, 7)
            ]
            big.apply(ledger, 0, txs)
        ledger.check_store()
    with big.open(map_size=64 << 10) as ledger:
        assert ledger.tip == 3


# --- stake tables (PROTOCOL §3) -----------------------------------------------------------


def test_stake_table_of_round_r_is_the_balances_after_block_r_minus_2(net):
    model = Model((k, 1000) for k in net.keys)
    after = [model.balances()]  # after[b]: balances after block b
    rng = random.Random(7)
    with net.open() as ledger:
        for r in range(1, 9):
            if r % 4 == 0:
                net.apply(ledger, None)
                after.append(model.balances())
                continue
            txs = []
            for sender in rng.sample(range(8), 3):
                nonce = model.accounts[sender].nonce
                new = Keypair.from_seed(hashlib.sha256(b"%d %d" % (r, sender)).digest())
                to = new.public_key if rng.random() < 0.3 else net.keys[(sender + 1) % 8]
                tx = transfer(
                    net.keypairs[sender],
                    to,
                    rng.randint(1, 200),
                    fee=3,
                    nonce=nonce,
                    chain=net.chain,
                )
                txs.append(tx)
            producer = rng.randrange(8)
            net.apply(ledger, producer, txs)
            model.apply(txs, producer)
            after.append(model.balances())
            for round in range(1, r + 3):
                assert balances(ledger.stake_table(round)) == after[max(0, round - 2)], round
        with pytest.raises(LedgerError, match="round 11 needs the balances after block 9"):
            ledger.stake_table(11)
    with net.open() as ledger:  # rebuilt on reopen from the records and the undo records
        for round in range(1, 11):
            assert balances(ledger.stake_table(round)) == after[max(0, round - 2)], round


def test_delegates_of_round_r_are_the_records_after_block_r_minus_2(net):
    """Registrars, delegations (to others and to oneself) over several blocks, against the
    slow model: `delegate(round, id)` is the model's delegate after block max(0, round - 2)."""
    extra = [Keypair.from_seed(hashlib.sha256(b"registrar %d" % i).digest()) for i in range(4)]
    keypairs = net.keypairs + extra
    model = Model((k, 1000) for k in net.keys)
    after = [model.delegates()]  # after[b]: delegates after block b
    rng = random.Random(11)

    def delegates(ledger: Ledger, round: int) -> list[int | None]:
        return [ledger.delegate(round, i) for i in range(len(keypairs) + 1)]

    def expected(round: int) -> list[int | None]:
        snapshot = after[max(0, round - 2)]
        return snapshot + [None] * (len(keypairs) + 1 - len(snapshot))

    with net.open() as ledger:
        for r in range(1, 11):
            txs = []
            for _ in range(6):
                kp = rng.choice(keypairs)
                sender = model.index.get(kp.public_key)
                if sender is None:
                    continue
                nonce = model.accounts[sender].nonce
                to = rng.choice(keypairs).public_key
                if rng.random() < 0.5:
                    tx = delegation(kp, to, fee=1, nonce=nonce, chain=net.chain)
                else:
                    tx = transfer(kp, to, rng.randint(1, 50), fee=1, nonce=nonce, chain=net.chain)
                if model.check([tx]) == [None]:
                    model.apply([tx], 0)
                    txs.append(tx)
            net.apply(ledger, 0, txs)
            after.append(model.delegates())
            for round in range(1, r + 3):
                assert delegates(ledger, round) == expected(round), round
        assert any(d is not None for d in after[-1][8:]), "registrars were recorded"
        assert any(d is not None for d in after[-1][:8]), "explicit delegations were made"
        with pytest.raises(LedgerError, match="round 13 needs the delegates after block 11"):
            ledger.delegate(13, 0)
    with net.open() as ledger:  # the same after a reopen
        for round in range(1, 13):
            assert delegates(ledger, round) == expected(round), round


def test_the_registrar_is_the_delegate_until_one_delegates_to_oneself(net):
    newcomer = Keypair.from_seed(hashlib.sha256(b"newcomer").digest())
    with net.open() as ledger:
        net.apply(
            ledger,
            0,
            [transfer(net.keypairs[3], newcomer.public_key, 40, fee=0, nonce=0, chain=net.chain)],
        )
        net.apply(ledger, None)
        assert ledger.account(8).delegate == 3
        assert ledger.delegate(2, 8) is None  # round 2: after block 0, no account 8 yet
        assert ledger.delegate(3, 8) == 3 and ledger.delegate(3, 3) is None  # genesis: none
        net.apply(
            ledger, 0, [delegation(newcomer, newcomer.public_key, fee=0, nonce=0, chain=net.chain)]
        )
        assert ledger.account(8).delegate is None
        assert ledger.delegate(4, 8) == 3 and ledger.delegate(5, 8) is None
    with net.open() as ledger:
        assert [ledger.delegate(r, 8) for r in range(1, 6)] == [None, None, 3, 3, None]
        assert ledger.delegate(5, -1) is None and ledger.delegate(5, 9) is None


def test_every_kept_snapshot_draws_the_committees_of_a_rebuild_from_scratch(net):
    """A random chain (transfers that create accounts, delegations, empty blocks): at every
    block, and after a reopen, each kept snapshot's committees, weights and delegates are
    those of the model replayed from the genesis, with sortition in pure Python."""
    keep = 4
    extra = [Keypair.from_seed(hashlib.sha256(b"snapshot %d" % i).digest()) for i in range(6)]
    keypairs = net.keypairs + extra
    model = Model((k, 1000) for k in net.keys)
    after = [model.copy()]  # after[b]: the model after block b
    rng = random.Random(23)

    def check(ledger: Ledger) -> None:
        tip = ledger.tip
        for round in range(max(1, tip - keep + 2), tip + 3):
            then = after[max(0, round - 2)]
            balances = then.balances()
            table = ledger.stake_table(round)
            seed = hashlib.sha256(b"%d" % round).digest()
            assert table.committee(seed, round, 1, 20) == model_committee(
                balances, seed, round, 1, 20
            ), round
            assert table.weights(seed, round, 4, 30) == model_weights(
                balances, seed, round, 4, 30
            ), round
            delegates = then.delegates() + [None] * (len(keypairs) + 1 - len(balances))
            assert [ledger.delegate(round, i) for i in range(len(keypairs) + 1)] == delegates
        with pytest.raises(LedgerError, match="is gone"):
            ledger.stake_table(tip - keep + 1)

    with net.open(undo_rounds=keep) as ledger:
        for r in range(1, 17):
            txs = []
            for _ in range(0 if r % 5 == 0 else 5):
                kp = rng.choice(keypairs)
                sender = model.index.get(kp.public_key)
                if sender is None:
                    continue
                nonce, to = model.accounts[sender].nonce, rng.choice(keypairs).public_key
                if rng.random() < 0.3:
                    tx = delegation(kp, to, fee=1, nonce=nonce, chain=net.chain)
                else:
                    amount = rng.randint(1, 300)
                    tx = transfer(kp, to, amount, fee=2, nonce=nonce, chain=net.chain)
                if model.check([tx]) == [None]:
                    model.apply([tx], 0)
                    txs.append(tx)
            net.apply(ledger, 0 if txs else None, txs)
            after.append(model.copy())
            if r > keep:
                check(ledger)
        assert len(model.accounts) > 8, "transfers created accounts"
    with net.open(undo_rounds=keep) as ledger:
        check(ledger)


def test_old_stake_tables_need_their_undo_records(net):
    with net.open(undo_rounds=3) as ledger:
        for _ in range(6):
            net.apply(ledger, 0, [])
        assert ledger.stake_table(5).total == 8000  # after block 3: undo 4..6 kept
        with pytest.raises(LedgerError, match="undo record of block 3 is gone"):
            ledger.stake_table(4)


def test_a_ledger_with_fewer_undo_records_opens_and_keeps_what_it_has(net):
    """Rounds rolled back and not redone leave fewer undo records than `undo_rounds`: the
    ledger still opens, with the snapshots those records reach."""
    with net.open(undo_rounds=3) as ledger:
        for _ in range(6):
            net.apply(ledger, 0, [])
        path = ledger.path
    env = lmdb.open(str(path), max_dbs=8, subdir=True)
    with env.begin(write=True) as txn:
        assert txn.delete((4).to_bytes(8, "big"), db=env.open_db(b"undo", txn=txn))
    env.close()
    with net.open(undo_rounds=3) as ledger:
        assert ledger.stake_table(6).total == ledger.stake_table(8).total == 8000
        with pytest.raises(LedgerError, match="undo record of block 4 is gone"):
            ledger.stake_table(5)


# --- crash safety ------------------------------------------------------------------------


def replay_and_check(ledger: Ledger, genesis: Genesis) -> None:
    """The stored chain links up, and replaying its blocks from the genesis gives the
    stored and in-memory state and both kept stake tables."""
    ledger.check_store()
    state = genesis.account_state(check_keys=False)
    prev_hash, seed = genesis.hash, genesis.seed
    before_tip = before_before = state.balances()
    for r in range(1, ledger.tip + 1):
        block, cert = ledger.block(r), ledger.certificate(r)
        assert (block.round, block.prev_hash, cert.round) == (r, prev_hash, r)
        assert cert.block_hash == block.hash and cert.b == int(block.is_empty)
        seed = next_seed(seed, r, block.seed_sig)
        assert ledger.seed(r) == seed and ledger.hash(r) == block.hash
        before_before, before_tip = before_tip, state.balances()
        state.apply(block)
        prev_hash = block.hash
    assert ledger.tip_hash == prev_hash
    assert state.records() == ledger.stored_records() == ledger.state.records()
    tip = ledger.tip
    assert ledger.stake_table(tip + 2).balance(0) == ledger.state.balance(0)
    assert balances(ledger.stake_table(tip + 2)) == list(memoryview(state.balances()).cast("Q"))
    assert balances(ledger.stake_table(tip + 1)) == list(memoryview(before_tip).cast("Q"))
    assert balances(ledger.stake_table(tip)) == list(memoryview(before_before).cast("Q"))


def test_a_sigkill_at_any_moment_loses_nothing_committed(tmp_path):
    net = Net(tmp_path, accounts=64, balance=10**9)
    genesis_dir, ledger_dir = net.path / "genesis", net.path / "ledger"
    rng = random.Random(20240601)
    last_tip = 0
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, str(WRITER), str(genesis_dir), str(ledger_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        opened = child.stdout.readline().split()
        assert opened == ["open", str(last_tip)], child.stderr.read() if child.stderr else ""
        first = child.stdout.readline().split()  # at least one block per run
        assert first == ["committed", str(last_tip + 1)]
        # Let it run a random while, then kill it wherever it is.
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=rng.uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, err
        # A kill in the middle of a print leaves a partial last line: only whole lines count.
        lines = out.split("\n")[:-1]
        committed = [last_tip + 1] + [int(line.split()[1]) for line in lines]
        with Ledger.open(ledger_dir, net.genesis) as ledger:
            # Every reported commit survived; at most the one in flight was added.
            assert max(committed) <= ledger.tip <= max(committed) + 1
            replay_and_check(ledger, net.genesis)
            last_tip = ledger.tip
    assert last_tip >= KILLS
