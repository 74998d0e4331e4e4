"""Start-up and shut-down of a real node process: every start-up error is one line and a
non-zero exit, without touching the data directory; SIGTERM finishes and closes the ledger."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import lmdb
import pytest
from _helpers import tip, until

from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import LEDGER_FORMAT, Ledger
from echorand.tools.devnet import Devnet
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.keys import load_node_keys, write_node_keys

SEED = "test-startup"
DEADLINE = 120.0


@pytest.fixture
def net(tmp_path: Path) -> Devnet:
    devnet = Devnet(tmp_path, nodes=1, accounts=4, seed=SEED)
    devnet.create()
    return devnet


def data_dir(net: Devnet) -> Path:
    return net.directory / "node-0" / "data"


def node_command(net: Devnet, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "echorand.tools.cli",
        "node",
        "--config",
        str(net.config_path(0)),
        *extra,
    ]


def start_fails(
    net: Devnet, *extra: str, env: dict[str, str] | None = None, alone: bool = True
) -> str:
    """Run the node, which must exit 1 at once; the one line that says why (`alone`: the
    only line, else the last after the start's info lines)."""
    done = subprocess.run(
        node_command(net, *extra),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=net.directory,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert sum("ERROR" in line for line in lines) == 1, done.stderr
    assert "cannot start: " in lines[-1] and (len(lines) == 1 or not alone), done.stderr
    return lines[-1]


def snapshot(path: Path) -> dict[str, tuple[str, float]]:
    """Every file under `path`: its SHA-256 and modification time."""
    if path.is_file():
        return {path.name: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime)}
    return {
        str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def make_ledger(net: Devnet) -> None:
    Ledger.open(data_dir(net), Genesis.load(net.directory / "genesis")).close()
    (data_dir(net) / "lock.mdb").unlink(missing_ok=True)
    (data_dir(net) / "ledger.lock").unlink(missing_ok=True)


def garbage(net: Devnet) -> None:
    make_ledger(net)
    data = data_dir(net) / "data.mdb"
    data.write_bytes(os.urandom(data.stat().st_size))


def truncated(net: Devnet) -> None:
    make_ledger(net)
    data = data_dir(net) / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)


def without_meta_key(net: Devnet) -> None:
    make_ledger(net)
    env = lmdb.open(str(data_dir(net)), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.delete(b"tip", db=env.open_db(b"meta", txn=txn))
    env.close()
    (data_dir(net) / "lock.mdb").unlink()


def old_format(net: Devnet) -> None:
    make_ledger(net)
    env = lmdb.open(str(data_dir(net)), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.put(b"format", (LEDGER_FORMAT - 1).to_bytes(4, "big"), db=env.open_db(b"meta", txn=txn))
    env.close()
    (data_dir(net) / "lock.mdb").unlink()


def another_genesis(net: Devnet) -> None:
    other = create_devnet(net.directory / "other", accounts=4, nodes=1, seed="another")
    Ledger.open(data_dir(net), other).close()
    (data_dir(net) / "lock.mdb").unlink()
    (data_dir(net) / "ledger.lock").unlink()


def foreign_lmdb(net: Devnet) -> None:
    env = lmdb.open(str(data_dir(net)), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v", db=env.open_db(b"photos", txn=txn))
    env.close()
    (data_dir(net) / "lock.mdb").unlink()


def foreign_directory(net: Devnet) -> None:
    data_dir(net).mkdir()
    (data_dir(net) / "notes.txt").write_text("my notes")


def a_file(net: Devnet) -> None:
    data_dir(net).write_text("not a directory")


CASES: dict[str, tuple[Callable[[Devnet], None], str]] = {
    "garbage data.mdb": (garbage, "data.mdb: not an LMDB environment that opens"),
    "truncated data.mdb": (truncated, "data.mdb: truncated"),
    "missing meta key": (without_meta_key, "meta has no 'tip' key: the ledger is damaged"),
    "older ledger format": (old_format, f"format {LEDGER_FORMAT - 1}, this node reads"),
    "another genesis": (another_genesis, "the ledger was made from genesis"),
    "a foreign LMDB environment": (foreign_lmdb, "no 'meta' database: not an echorand ledger"),
    "a foreign directory": (foreign_directory, "holds no ledger (no data.mdb) but other files"),
    "a file": (a_file, "data: not a directory"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_corrupt_or_foreign_data_directory_is_named_and_left_alone(
    net: Devnet, case: str
) -> None:
    prepare, reason = CASES[case]
    prepare(net)
    before = snapshot(data_dir(net))
    line = start_fails(net)
    assert reason in line
    assert snapshot(data_dir(net)) == before


def test_a_truncated_genesis_is_named(net: Devnet) -> None:
    accounts = net.directory / "genesis" / "accounts.bin"
    os.truncate(accounts, accounts.stat().st_size - 1)
    assert "accounts.bin" in start_fails(net)


def test_a_busy_api_port_is_one_line(net: Devnet) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", net.api_ports[0]))
        busy.listen()
        assert "address already in use" in start_fails(net, alone=False).lower()


def test_a_sealed_node_key_file_needs_its_passphrase(net: Devnet) -> None:
    path = node_keys_path(net.directory / "genesis", 0)
    write_node_keys(
        path, load_node_keys(path), overwrite=True, passphrase=b"s3cret", strength="interactive"
    )
    assert "no terminal to ask on" in start_fails(net)
    env = {**os.environ, "NODE_PASSPHRASE": "wrong"}
    assert "wrong passphrase" in start_fails(net, "--passphrase-env", "NODE_PASSPHRASE", env=env)
    env["NODE_PASSPHRASE"] = "s3cret"
    proc = start(net, "--passphrase-env", "NODE_PASSPHRASE", env=env)
    try:
        wait_for_tip(net, proc, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0 and "not encrypted" not in err


def start(net: Devnet, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        node_command(net, *extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=net.directory,
    )


def wait_for_tip(net: Devnet, proc: subprocess.Popen[str], round: int) -> int:
    """The tip of the node `proc` runs once it is at `round` or later."""

    def alive() -> None:
        assert proc.poll() is None, "the node exited"

    def reached() -> int | None:
        now = tip(net, 0)
        return now if now >= round else None

    return until(reached, f"block {round}", check=alive)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_node_cleanly_with_json_logs(net: Devnet, sig: int) -> None:
    proc = start(net, "--log-format", "json")
    try:
        wait_for_tip(net, proc, 3)
    finally:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any("not encrypted" in r["message"] and r["level"] == "warning" for r in records)
    last = records[-1]["message"]
    assert last.startswith("stopped at round ") and last.endswith(", ledger closed")
    stopped_at = int(last.split()[3].rstrip(","))
    with Ledger.open(data_dir(net), Genesis.load(net.directory / "genesis")) as ledger:
        assert ledger.tip == stopped_at >= 3
        ledger.check_store()
