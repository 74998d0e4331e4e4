"""The node's TOML configuration (echorand.node.config): defaults, paths, errors naming the
field."""

from __future__ import annotations

from pathlib import Path

import pytest

from echorand.node.config import ConfigError, load_config
from echorand.tools.devnet import Devnet


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = '[node]\ndata_dir = "data"\ngenesis = "g"\nkeys = "k.keys"\n'


def test_minimal_config_resolves_paths_against_its_directory(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.data_dir == (tmp_path / "data").resolve()
    assert config.genesis == (tmp_path / "g").resolve()
    assert config.keys == (tmp_path / "k.keys").resolve()
    assert config.api is None and config.peers == () and config.min_peers == 0
    assert config.block_max_txs == 5000 and config.durable is True


def test_full_config(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            MINIMAL
            + 'log_level = "DEBUG"\nmin_peers = 3\n'
            + '[network]\nport = 9000\npeers = ["127.0.0.1:9001", "[::1]:9002"]\n'
            + "[api]\nport = 8080\n[mempool]\nmax_count = 10\nmin_fee = 2\n"
            + "[blocks]\nmax_txs = 7\n",
        )
    )
    assert config.log_level == "debug" and config.min_peers == 3
    assert config.port == 9000 and config.peers == (("127.0.0.1", 9001), ("::1", 9002))
    assert config.api is not None and config.api.port == 8080
    assert config.mempool_max_count == 10 and config.mempool_min_fee == 2
    assert config.block_max_txs == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[node]\ndata_dir = 'd'\ngenesis = 'g'\n", "[node] keys: missing"),
        ("[node]\ngenesis = 'g'\nkeys = 'k'\n", "[node] data_dir: missing"),
        (MINIMAL + "colour = 'blue'\n", "[node] colour: unknown field"),
        (MINIMAL + "[netwrok]\n", "[netwrok]: unknown table"),
        (MINIMAL + "[network]\nport = 70000\n", "[network] port: 70000 is outside 0..65535"),
        (MINIMAL + "[network]\nport = 'x'\n", "[network] port: must be an integer"),
        (MINIMAL + "[network]\npeers = ['nohost']\n", "[network] peers: peer address"),
        (MINIMAL + "log_level = 'loud'\n", "[node] log_level: 'loud' is not one of"),
        (MINIMAL + "durable = 1\n", "[node] durable: must be true or false"),
        (MINIMAL + "[blocks]\nmax_txs = 100001\n", "[blocks] max_txs: 100001 is outside"),
        ("[node\n", "not valid TOML"),
    ],
)
def test_errors_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")


def test_devnet_configs_load(tmp_path: Path) -> None:
    net = Devnet(tmp_path, nodes=3, accounts=6, seed="config")
    net.create()
    for k in range(3):
        config = load_config(net.config_path(k))
        assert config.keys is not None and config.keys.exists()
        assert config.genesis.is_dir() and config.min_peers == 2
        assert config.port == net.p2p_ports[k] and len(config.peers) == k
        assert config.api is not None and config.api.port == net.api_ports[k]


def test_a_non_validator_has_no_keys(tmp_path: Path) -> None:
    follower = '[node]\ndata_dir = "data"\ngenesis = "g"\nvalidator = false\n'
    config = load_config(write(tmp_path, follower))
    assert config.keys is None and config.key_files == ()
    with pytest.raises(ConfigError, match="validator: false, yet keys are given"):
        load_config(write(tmp_path, MINIMAL + "validator = false\n"))
    with pytest.raises(ConfigError, match="validator = false for a node that only follows"):
        load_config(write(tmp_path, '[node]\ndata_dir = "data"\ngenesis = "g"\n'))
