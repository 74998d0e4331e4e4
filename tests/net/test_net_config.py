"""The `[network]` settings of a node's configuration: pinned peers, the node key, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from echorand.node.config import ConfigError, load_config

MINIMAL = '[node]\ndata_dir = "data"\ngenesis = "g"\nkeys = "k.keys"\n'
KEY = bytes(range(32))


def load(tmp_path: Path, network: str):
    path = tmp_path / "node.toml"
    path.write_text(MINIMAL + "[network]\n" + network, encoding="utf-8")
    return load_config(path)


def test_pinned_peers_node_key_and_limits(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        f'peers = ["127.0.0.1:9001", "{KEY.hex()}@10.0.0.2:9000"]\nnode_key = "p2p.key"\n'
        "max_inbound = 10\nmax_per_address = 2\nidle_timeout = 5\nsync_timeout = 1.5\n"
        "ban_seconds = 30\n",
    )
    assert config.peers == (("127.0.0.1", 9001), ("10.0.0.2", 9000))
    assert config.pinned == {("10.0.0.2", 9000): KEY}
    assert config.node_key == (tmp_path / "p2p.key").resolve()
    assert (config.max_inbound, config.max_per_address) == (10, 2)
    assert (config.idle_timeout, config.sync_timeout, config.ban_seconds) == (5.0, 1.5, 30.0)


def test_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.node_key is None and config.pinned == {}
    assert (config.max_inbound, config.max_per_address, config.idle_timeout) == (64, 8, 60.0)
    assert (config.sync_timeout, config.ban_seconds) == (20.0, 60.0)


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ('peers = ["abcd@127.0.0.1:1"]', "peers: peer 'abcd@127.0.0.1:1': the pinned key"),
        ("idle_timeout = 0", "idle_timeout: must be positive"),
        ("sync_timeout = -1", "sync_timeout: -1 is below 0.0"),
        ("max_per_address = 0", "max_per_address: 0 is outside 1..65536"),
        ("ban_seconds = true", "ban_seconds: must be a number"),
    ],
)
def test_bad_network_settings_name_the_field(tmp_path: Path, network: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(tmp_path, network)
