"""Genesis files, devnet keys, key files, and the `keys`/`genesis` commands."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
from array import array
from dataclasses import replace
from pathlib import Path

import pytest

from echorand.ledger.genesis import ACCOUNTS_FILE, GENESIS_FILE, Genesis, GenesisError
from echorand.protocol.params import Params, Rewards
from echorand.tools.genesis import (
    add_genesis_arguments,
    create_devnet,
    devnet_master,
    node_keys_path,
    run_genesis,
)
from echorand.tools.keys import add_keys_arguments, run_keys
from echorand.wire.crypto import Keypair
from echorand.wire.keys import (
    KeyFileError,
    LocalKeys,
    NodeKeys,
    load_keypair,
    load_node_keys,
    write_keypair,
)


@pytest.fixture
def devnet(tmp_path: Path) -> tuple[Path, Genesis]:
    path = tmp_path / "net"
    return path, create_devnet(path, accounts=10, nodes=3, seed="test", balance=500)


def edit_json(path: Path, change) -> None:
    doc = json.loads((path / GENESIS_FILE).read_text())
    change(doc)
    (path / GENESIS_FILE).write_text(json.dumps(doc))


# --- the genesis ---------------------------------------------------------------------


def test_a_genesis_round_trips_through_its_files(devnet):
    path, genesis = devnet
    loaded = Genesis.load(path, check_keys=True)
    assert loaded == genesis
    assert loaded.hash == genesis.hash
    assert Genesis.load(path / GENESIS_FILE) == genesis
    assert (genesis.count, genesis.total) == (10, 5000)
    assert genesis.balance(9) == 500


def test_the_genesis_hash_is_the_tagged_hash_of_its_encoding(devnet):
    _, g = devnet
    accounts_digest = hashlib.sha256(
        (b"").join(g.public_key(i) + g.balance(i).to_bytes(8, "big") for i in range(g.count))
    ).digest()
    encoding = (
        b"\x02"  # format 2: PROTOCOL revision 2
        + len(g.name).to_bytes(2, "big")
        + g.name.encode()
        + g.seed
        + b"".join(
            v.to_bytes(4, "big")
            for v in (g.params.n_g, g.params.n_c, g.params.t_h, g.params.k, 200, 1000)
        )
        + b"\x00"  # proposer policy: sortition
        + (0).to_bytes(4, "big")  # validators
        + b"\x00"  # fallback off
        + (0).to_bytes(8, "big")  # reward floor
        + (0).to_bytes(8, "big")  # reward ceiling
        + (64).to_bytes(4, "big")  # reward window
        + b"\x03"  # reward decay
        + b"\x14"  # producer share: 20 %
        + (4 + 6 * g.params.k).to_bytes(4, "big")  # max_step: 4 + 3m, m = 2k by default
        + (g.params.n_c * 74 // 100).to_bytes(4, "big")  # t_f: floor(0.74 N_c)
        + (1).to_bytes(4, "big")  # f = 1/5: numerator
        + (5).to_bytes(4, "big")  # and denominator
        + b"\x00"  # insecure_committee: no
        + g.count.to_bytes(8, "big")
        + accounts_digest
    )
    assert g.hash == hashlib.sha256(b"echorand/genesis\x00" + encoding).digest()


def test_every_field_changes_the_hash(devnet):
    _, g = devnet
    variants = [
        Genesis(name="other", params=g.params, seed=g.seed, accounts=g.accounts),
        Genesis(name=g.name, params=Params(n_c=999), seed=g.seed, accounts=g.accounts),
        Genesis(name=g.name, params=g.params, seed=bytes(32), accounts=g.accounts),
        Genesis(name=g.name, params=g.params, seed=g.seed, accounts=g.accounts[:-1] + b"\x01"),
        Genesis(
            name=g.name,
            params=Params(proposer_policy="round-robin", validators=4),
            seed=g.seed,
            accounts=g.accounts,
        ),
        Genesis(
            name=g.name,
            params=Params(proposer_policy="round-robin-seeded", validators=4),
            seed=g.seed,
            accounts=g.accounts,
        ),
        Genesis(name=g.name, params=Params(fallback=True), seed=g.seed, accounts=g.accounts),
        *(
            Genesis(name=g.name, params=Params(rewards=r), seed=g.seed, accounts=g.accounts)
            for r in (
                Rewards(floor=1, ceiling=1),
                Rewards(ceiling=1),
                Rewards(window=65),
                Rewards(decay=4),
                Rewards(producer_share=21),
            )
        ),
        Genesis(
            name=g.name, params=replace(g.params, seed_mode="vrf"), seed=g.seed, accounts=g.accounts
        ),
    ]
    assert len({g.hash, *(v.hash for v in variants)}) == 14


def test_a_vrf_genesis_is_format_3_with_its_mode_before_the_accounts(tmp_path, devnet):
    """Format 3 = format 2's encoding, format byte 3, and u8(seed mode) = 1 after
    insecure_committee; a signature genesis stays format 2 (its hash unchanged)."""
    _, g = devnet
    vrf = Genesis(
        name=g.name, params=replace(g.params, seed_mode="vrf"), seed=g.seed, accounts=g.accounts
    )
    assert (g.format, vrf.format) == (2, 3)
    old = g.encoding()
    assert vrf.encoding() == b"\x03" + old[1:-40] + b"\x01" + old[-40:]
    assert vrf.hash == hashlib.sha256(b"echorand/genesis\x00" + vrf.encoding()).digest()
    written = create_devnet(tmp_path / "v", accounts=4, nodes=2, seed="v", params=vrf.params)
    doc = json.loads((tmp_path / "v" / GENESIS_FILE).read_text())
    assert (doc["format"], doc["params"]["seed_mode"]) == (3, "vrf")
    assert Genesis.load(tmp_path / "v") == written
    edit_json(tmp_path / "v", lambda d: d.update(format=2))
    with pytest.raises(GenesisError, match=r"params\.seed_mode: unknown field"):
        Genesis.load(tmp_path / "v")


def test_the_proposer_policy_is_selected_in_the_genesis(tmp_path):
    params = Params(proposer_policy="round-robin-seeded", validators=7, fallback=True)
    written = create_devnet(tmp_path / "rr", accounts=9, nodes=3, seed="rr", params=params)
    loaded = Genesis.load(tmp_path / "rr")
    assert loaded.params == params and loaded.hash == written.hash
    doc = json.loads((tmp_path / "rr" / GENESIS_FILE).read_text())
    assert doc["params"]["proposer_policy"] == "round-robin-seeded"
    assert doc["params"]["validators"] == 7 and doc["params"]["fallback"] is True


def test_the_rewards_are_set_in_the_genesis(tmp_path):
    rewards = Rewards(floor=10, ceiling=500, window=32, decay=2, producer_share=30)
    written = create_devnet(
        tmp_path / "r", accounts=4, nodes=2, seed="r", params=Params(rewards=rewards)
    )
    loaded = Genesis.load(tmp_path / "r")
    assert loaded.params.rewards == rewards and loaded.hash == written.hash
    doc = json.loads((tmp_path / "r" / GENESIS_FILE).read_text())
    assert doc["params"]["rewards"] == {
        "floor": 10, "ceiling": 500, "window": 32, "decay": 2, "producer_share": 30,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("rewards", "message"),
    [
        ({"floor": 5, "ceiling": 4}, "params.rewards: need 0 <= floor <= ceiling"),
        ({"ceiling": 2**49}, "params.rewards: need 0 <= floor <= ceiling <= 2\\^48"),
        ({"window": 0}, "params.rewards.window must be in \\[1, 4096\\]"),
        ({"decay": 33}, "params.rewards.decay must be in \\[0, 32\\]"),
        ({"producer_share": 101}, "params.rewards.producer_share must be in \\[0, 100\\]"),
        ({"floor": -1}, "params.rewards.floor: must be in"),
        ({"floor": "1"}, "params.rewards.floor: missing or not an integer"),
        ({"bonus": 1}, "params.rewards.bonus: unknown field"),
    ],
)
def test_bad_rewards_are_named(devnet, rewards, message):
    path, _ = devnet
    edit_json(path, lambda doc: doc["params"].__setitem__("rewards", rewards))
    with pytest.raises(GenesisError, match=message):
        Genesis.load(path)


def test_a_genesis_without_policy_fields_means_sortition(devnet):
    path, g = devnet

    def drop(doc):
        for name in ("proposer_policy", "validators", "fallback", "rewards"):
            del doc["params"][name]

    edit_json(path, drop)
    params = Genesis.load(path).params
    assert params == g.params and params.proposer_policy == "sortition"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("proposer_policy", "lottery", "must be one of sortition, round-robin"),
        ("fallback", 1, "must be true or false"),
        ("validators", -1, "must be in"),
    ],
)
def test_bad_policy_fields_are_named(devnet, field, value, message):
    path, _ = devnet
    edit_json(path, lambda doc: doc["params"].__setitem__(field, value))
    with pytest.raises(GenesisError, match=f"params.{field}.*{message}"):
        Genesis.load(path)


def test_a_devnet_is_deterministic(tmp_path):
    a = create_devnet(tmp_path / "a", accounts=7, nodes=2, seed="same")
    b = create_devnet(tmp_path / "b", accounts=7, nodes=2, seed="same")
    c = create_devnet(tmp_path / "c", accounts=7, nodes=2, seed="different")
    assert a.hash == b.hash != c.hash
    assert a.seed == hashlib.sha256(b"echorand/devnet-q0\x00" + devnet_master("same")).digest()


def test_devnet_keys_are_the_documented_derivation(devnet):
    _, genesis = devnet
    master = devnet_master("test")
    for i in (0, 4, 9):
        seed = hashlib.sha256(b"echorand/devnet-key\x00" + master + i.to_bytes(8, "big")).digest()
        assert Keypair.from_seed(seed).public_key == genesis.public_key(i)


def test_each_node_runs_its_round_robin_share(devnet):
    path, genesis = devnet
    seen = []
    for node in range(3):
        keys = load_node_keys(node_keys_path(path, node), public_keys=genesis.public_keys())
        assert (keys.node, keys.nodes, keys.genesis_hash) == (node, 3, genesis.hash)
        assert list(keys.ids) == list(range(node, 10, 3))
        for account, kp in keys.keypairs():
            assert kp.public_key == genesis.public_key(account)
        seen += keys.ids
        mode = stat.S_IMODE(os.stat(node_keys_path(path, node)).st_mode)
        assert mode == 0o600
    assert sorted(seen) == list(range(10))


def test_local_keys_make_each_pair_at_first_use_and_check_it(devnet, tmp_path):
    path, genesis = devnet
    node_keys = load_node_keys(node_keys_path(path, 1))
    extra = Keypair.from_seed(bytes(32))
    local = LocalKeys(node_keys, genesis.public_key, {0: extra})
    assert len(local) == 4 and list(local) == [1, 4, 7, 0]
    assert 4 in local and 0 in local and 2 not in local and "4" not in local
    assert local[4].public_key == genesis.public_key(4) and local[4] is local[4]
    assert local[0] is extra
    with pytest.raises(KeyError):
        local[5]
    assert node_keys.ids == range(1, 10, 3), "a devnet node's ids load as a range"
    sparse = NodeKeys(genesis.hash, 0, 1, array("Q", [2, 3, 8]), bytes(range(96)))
    assert [sparse.index(a) for a in (1, 2, 3, 8, 9)] == [None, 0, 1, 2, None]
    wrong = LocalKeys(node_keys, lambda account: bytes(32), where="node-1 keys")
    assert 7 in wrong
    with pytest.raises(KeyFileError, match="node-1 keys: account 7: the seed does not give"):
        wrong[7]


def test_a_genesis_is_not_overwritten_by_accident(devnet):
    path, _ = devnet
    with pytest.raises(FileExistsError, match="exists"):
        create_devnet(path, accounts=2, nodes=1, seed="x")
    create_devnet(path, accounts=2, nodes=1, seed="x", overwrite=True)
    assert Genesis.load(path).count == 2


# --- validation errors name the file and the field -----------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format=4), r"genesis.json: format: must be in \[2, 3\]"),
        (
            lambda d: d.update(format=3),
            r"genesis.json: format: 3, but a genesis with seed_mode 'signature' is format 2",
        ),
        (lambda d: d["params"].update(seed_mode="vrf"), r"params.seed_mode: unknown field"),
        (lambda d: d.update(format=1), r"genesis.json: format: 1 predates PROTOCOL revision 2"),
        (lambda d: d.update(name="bad name!"), r"genesis.json: name: 1-64 characters"),
        (lambda d: d.update(seed="zz"), r"genesis.json: seed: not hex"),
        (lambda d: d.update(seed="00"), r"genesis.json: seed: must be 32 bytes"),
        (lambda d: d.update(extra=1), r"genesis.json: extra: unknown field"),
        (lambda d: d["params"].update(n_c="1000"), r"genesis.json: params.n_c: missing or not"),
        (lambda d: d["params"].update(t_h=5000), r"genesis.json: params: t_h must be in"),
        (lambda d: d["params"].pop("k"), r"genesis.json: params.k: missing"),
        (lambda d: d["accounts"].update(count=11), r"accounts.bin: 400 bytes, but"),
        (lambda d: d["accounts"].update(total=1), r"accounts.total: 1 does not match"),
        (lambda d: d["accounts"].update(sha256="00" * 32), r"accounts.bin: its SHA-256"),
        (lambda d: d.update(hash="00" * 32), r"genesis.json: hash: does not match"),
    ],
)
def test_a_bad_genesis_json_is_refused_with_the_field(devnet, change, message):
    path, _ = devnet
    edit_json(path, change)
    with pytest.raises(GenesisError, match=message):
        Genesis.load(path)


def test_bad_accounts_are_refused(devnet):
    path, genesis = devnet
    small_order = bytes([1]) + bytes(31)
    accounts = small_order + genesis.accounts[32:]
    (path / ACCOUNTS_FILE).write_bytes(accounts)
    digest = hashlib.sha256(accounts).hexdigest()

    def fix(d):
        d["accounts"]["sha256"] = digest
        d["hash"] = Genesis(genesis.name, genesis.params, genesis.seed, accounts).hash.hex()

    edit_json(path, fix)
    Genesis.load(path)  # keys are checked on demand (the ledger does it)
    with pytest.raises(GenesisError, match=r"account 0: public key 01000000.* small-order"):
        Genesis.load(path, check_keys=True)
    twice = Genesis(genesis.name, genesis.params, genesis.seed, genesis.accounts[:40] * 2)
    with pytest.raises(GenesisError, match="repeats account 0"):
        twice.check_keys()  # no pass over the keys when built: the ledger checks them
    with pytest.raises(GenesisError, match="repeats account 0"):
        twice.account_state(check_keys=False)
    with pytest.raises(GenesisError, match=r"total of the balances reaches 2\*\*63"):
        Genesis(genesis.name, genesis.params, genesis.seed, (genesis.accounts[:32] + b"\xff" * 8))
    with pytest.raises(GenesisError, match="total balance is zero"):
        Genesis(genesis.name, genesis.params, genesis.seed, genesis.accounts[:32] + bytes(8))
    with pytest.raises(GenesisError, match=r"missing.genesis\.json: cannot read"):
        Genesis.load(path / "missing")


# --- key files -------------------------------------------------------------------------


def test_a_keypair_file_round_trips_and_is_private(tmp_path):
    kp = Keypair.generate()
    write_keypair(tmp_path / "k.json", kp)
    assert load_keypair(tmp_path / "k.json").public_key == kp.public_key
    assert stat.S_IMODE(os.stat(tmp_path / "k.json").st_mode) == 0o600
    with pytest.raises(FileExistsError):
        write_keypair(tmp_path / "k.json", kp)


def test_a_keypair_file_whose_key_does_not_match_is_refused(tmp_path):
    kp = Keypair.generate()
    write_keypair(tmp_path / "k.json", kp)
    doc = json.loads((tmp_path / "k.json").read_text())
    doc["public_key"] = Keypair.generate().public_key.hex()
    (tmp_path / "k.json").write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match=r"k\.json: public_key: does not belong to the seed"):
        load_keypair(tmp_path / "k.json")


def test_node_keys_that_do_not_match_the_genesis_are_refused(tmp_path, devnet):
    path, _ = devnet
    other = create_devnet(tmp_path / "other", accounts=10, nodes=3, seed="other")
    with pytest.raises(KeyFileError, match="account 1: the seed does not give its public key"):
        load_node_keys(node_keys_path(path, 1), public_keys=other.public_keys())
    data = node_keys_path(path, 0).read_bytes()
    node_keys_path(path, 0).write_bytes(data[:-1])
    with pytest.raises(KeyFileError, match="count: 4 entries need 160 bytes, got 159"):
        load_node_keys(node_keys_path(path, 0))
    node_keys_path(path, 0).write_bytes(b"nope" + data)
    with pytest.raises(KeyFileError, match="not a node key file"):
        load_node_keys(node_keys_path(path, 0))


# --- the commands --------------------------------------------------------------------


def parse(add, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)
    return parser.parse_args(argv)


def test_echorand_keys_writes_a_key_file_and_prints_its_public_key(tmp_path, capsys):
    args = parse(add_keys_arguments, ["--out", str(tmp_path / "node.key")])
    assert run_keys(args) == 0
    printed = capsys.readouterr().out.strip()
    assert load_keypair(tmp_path / "node.key").public_key.hex() == printed
    assert run_keys(args) == 1
    assert "exists" in capsys.readouterr().err


def test_echorand_genesis_writes_a_devnet(tmp_path, capsys):
    out = tmp_path / "g"
    argv = ["--accounts", "12", "--nodes", "4", "--out", str(out), "--seed", "s", "--n-c", "50"]
    argv.append("--insecure-committee")
    assert run_genesis(parse(add_genesis_arguments, argv)) == 0
    genesis = Genesis.load(out, check_keys=True)
    assert genesis.params == Params(n_c=50, insecure_committee=True)
    printed = capsys.readouterr().out
    assert genesis.hash.hex() in printed and "INSECURE (waived by --insecure-committee)" in printed
    assert all(node_keys_path(out, i).exists() for i in range(4))
    bad = ["--accounts", "2", "--nodes", "4", "--out", str(tmp_path / "h"), "--seed", "s"]
    assert run_genesis(parse(add_genesis_arguments, bad)) == 1
    assert "4 nodes need at least as many accounts" in capsys.readouterr().err
