"""`echorand network init|join` (echorand.tools.kit): the generated files of 4 hosts run as real
node processes on distinct loopback addresses (127.0.0.2..5), and a non-validating node
that joins later (127.0.0.6) syncs the chain and follows it."""

from __future__ import annotations

import configparser
import json
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers import until

from echorand.ledger.genesis import Genesis
from echorand.tools.cli import main
from echorand.tools.client import NodeClient
from echorand.wire.keys import load_node_keys

ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
OBSERVER = "127.0.0.6"
DEADLINE = 180.0


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def loopback_aliases_work() -> bool:
    try:
        free_port(OBSERVER)
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not loopback_aliases_work(), reason="127.0.0.2.. cannot be bound on this machine"
)


class Network:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, directory: Path) -> None:
        log = (directory / "node.log").open("ab")
        self.procs[directory.name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "echorand.tools.cli",
                "node",
                "--config",
                str(directory / "node.toml"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
        log.close()

    def client(self, directory: Path) -> NodeClient:
        api = tomllib.loads((directory / "node.toml").read_text())["api"]
        return NodeClient(f"http://{api['host']}:{api['port']}", timeout=5)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log = (self.root / name / "node.log").read_text(errors="replace")
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{log[-3000:]}")

    def tip(self, directory: Path) -> int:
        try:
            status = self.client(directory).status()
        except OSError:
            return -1
        return status["tip"]["round"] if status["sync"]["joined"] else -1

    def wait(self, directories: list[Path], round: int) -> None:
        until(
            lambda: min(self.tip(d) for d in directories) >= round,
            f"every node at round {round}",
            timeout=DEADLINE,
            check=self.check_alive,
        )

    def stop(self) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = proc.wait()
        return codes


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Network]]:
    root = tmp_path_factory.mktemp("kit")
    hosts = ",".join(f"{a}:{free_port(a)}" for a in ADDRESSES)
    argv = ["network", "init", "--hosts", hosts, "--accounts", "8", "--out", str(root / "net")]
    argv += ["--api-on-host", "--api-port", str(free_port("127.0.0.1")), "--lam-ms", "100"]
    assert main([*argv, "--big-lam-ms", "500"]) == 0
    net = Network(root / "net")
    try:
        yield root / "net", net
    finally:
        codes = net.stop()
    # every node that ran exits 0 on SIGTERM (those a test stopped already say so too)
    assert set(codes.values()) <= {0}, f"exit status on SIGTERM (0 expected): {codes}"


def test_init_writes_a_directory_per_host(kit: tuple[Path, Network]) -> None:
    out, _ = kit
    manifest = json.loads((out / "network.json").read_text())
    genesis = Genesis.load(out / "genesis")
    assert manifest["genesis"] == genesis.hash.hex() and genesis.count == 8
    assert genesis.security().secure and not genesis.params.insecure_committee
    owned = []
    for i, address in enumerate(ADDRESSES):
        directory = out / f"node-{i}"
        config = tomllib.loads((directory / "node.toml").read_text())
        assert config["network"]["host"] == address and len(config["network"]["peers"]) == 3
        assert all(not p.startswith(f"{address}:") for p in config["network"]["peers"])
        assert Genesis.load(directory / "genesis").hash == genesis.hash
        keys = load_node_keys(directory / "node.keys", public_keys=genesis.public_keys())
        assert (
            keys.genesis_hash == genesis.hash
            and (directory / "node.keys").stat().st_mode & 0o77 == 0
        )
        owned += keys.ids
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read_string((directory / "echorand.service").read_text())
        assert unit["Service"]["ExecStart"].endswith("--log-format json")
        assert unit["Service"]["KillSignal"] == "SIGTERM"
    assert sorted(owned) == list(range(8))


def test_four_hosts_run_one_chain(kit: tuple[Path, Network]) -> None:
    out, net = kit
    nodes = [out / f"node-{i}" for i in range(4)]
    for directory in nodes:
        net.start(directory)
    net.wait(nodes, 3)
    chains = [net.client(d).hashes(1, 3) for d in nodes]
    assert all(chain == chains[0] for chain in chains) and len(chains[0]) == 3
    assert all(net.client(d).status()["peers"] == 3 for d in nodes)


def test_a_non_validating_node_joins_and_syncs(kit: tuple[Path, Network], tmp_path: Path) -> None:
    out, net = kit
    nodes = [out / f"node-{i}" for i in range(4)]
    net.wait(nodes, 3)
    observer = out / "observer"
    argv = ["network", "join", "--network", str(out), "--host", f"{OBSERVER}:{free_port(OBSERVER)}"]
    argv += ["--out", str(observer), "--api-on-host", "--api-port", str(free_port(OBSERVER))]
    assert main(argv) == 0
    assert "validator = false" in (observer / "node.toml").read_text()
    target = net.tip(nodes[0]) + 2
    net.start(observer)
    net.wait([observer], target)
    status = net.client(observer).status()
    assert status["accounts"] == 0 and status["sync"]["synced_blocks"] >= 1
    assert net.client(observer).hashes(1, target) == net.client(nodes[0]).hashes(1, target)
    codes = net.stop()
    assert set(codes.values()) == {0}, codes
