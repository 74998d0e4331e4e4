"""The client commands (echorand.tools.client) against a real one-node devnet process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers import DEADLINE, running

from echorand.tools.cli import main
from echorand.tools.client import NodeClient
from echorand.tools.devnet import Devnet
from echorand.tools.genesis import devnet_master
from echorand.wire.crypto import Keypair
from echorand.wire.keys import load_keypair, write_keypair
from echorand.wire.transactions import devnet_seeds

SEED = "test-client"
ACCOUNTS = 6
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("client"), nodes=1, accounts=ACCOUNTS, seed=SEED)
    with running(net):
        yield net


def keypair(account: int) -> Keypair:
    seeds = devnet_seeds(devnet_master(SEED), ACCOUNTS)
    return Keypair.from_seed(seeds[32 * account : 32 * (account + 1)])


def url(node: Devnet) -> str:
    return node.url(0, "")


def run(node: Devnet, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--node", url(node)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_status_as_json_and_as_a_table(node: Devnet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(node, capsys, "status", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["genesis"] == node.genesis_hash.hex() and doc["sync"]["joined"]
    code, out, _ = run(node, capsys, "status")
    assert code == 0 and "round / step" in out and "supply" in out


def test_the_node_url_comes_from_the_environment(
    node: Devnet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECHORAND_NODE", url(node))
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accounts"] == ACCOUNTS


def test_account_by_id_and_by_key(node: Devnet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(node, capsys, "account", "2", "--json")
    by_id = json.loads(out)
    assert code == 0 and by_id["public_key"] == keypair(2).public_key.hex()
    code, out, _ = run(node, capsys, "account", by_id["public_key"], "--json")
    assert code == 0 and json.loads(out)["id"] == 2
    code, out, _ = run(node, capsys, "account", "2")
    assert code == 0 and "balance" in out and by_id["public_key"][:32] in out


def test_block_latest_and_by_round(node: Devnet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(node, capsys, "block", "latest", "--json")
    latest = json.loads(out)
    assert code == 0 and latest["round"] >= 1
    code, out, _ = run(node, capsys, "block", "1", "--json")
    status = "final" if json.loads(out)["final"] else "tentative"
    code, out, _ = run(node, capsys, "block", "1")
    assert code == 0 and "certificate" in out and status in out


def test_refusals_are_one_line_and_a_nonzero_exit(
    node: Devnet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(node, capsys, "block", "0")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"echorand block: the node answered 404: round 0: no committed block (the tip is "
        f"{err.split('the tip is ')[1].split(')')[0]})"
    ]
    code, _, err = run(node, capsys, "account", "²")
    assert code == 1 and "answered 400" in err and "neither a 64-hex-digit key nor an id" in err
    assert main(["status", "--node", "http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("echorand status: cannot reach the node:") and err.count("\n") == 1


@pytest.fixture(scope="module")
def sealed_key(node: Devnet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "sender.key"
    write_keypair(path, keypair(0), passphrase=PASSPHRASE.encode(), strength="interactive")
    return path


def test_send_signs_with_a_sealed_key_and_waits_for_the_block(
    node: Devnet,
    sealed_key: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = NodeClient(url(node))
    before = client.account(3)["balance"]
    monkeypatch.setenv("SENDER_PASSPHRASE", PASSPHRASE)
    argv = ["send", "--from", str(sealed_key), "--to", "3", "--amount", "7", "--fee", "1", "--wait"]
    code, out, err = run(node, capsys, *argv, "--passphrase-env", "SENDER_PASSPHRASE")
    assert code == 0, err
    # one node holds all the stake: its own final votes make each block final as it commits
    assert "accepted" in out and ": final" in out
    assert client.account(3)["balance"] >= before + 7
    key3 = keypair(3).public_key.hex()
    argv = ["send", "--from", str(sealed_key), "--to", key3, "--amount", "2", "--wait"]
    code, out, err = run(node, capsys, *argv, "--json", "--passphrase-env", "SENDER_PASSPHRASE")
    doc = json.loads(out)
    assert code == 0 and doc["accepted"] and doc["finality"] == "final"
    assert doc["id"] in client.block(doc["round"])["tx_ids"]


def test_send_without_the_passphrase_or_funds_is_refused(
    node: Devnet,
    sealed_key: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["send", "--from", str(sealed_key), "--to", "1", "--amount", "1"]
    monkeypatch.setenv("WRONG", "not it")
    code, _, err = run(node, capsys, *argv, "--passphrase-env", "WRONG")
    assert code == 1 and "wrong passphrase" in err
    code, _, err = run(node, capsys, *argv, "--passphrase-env", "UNSET_VARIABLE_XYZ")
    assert code == 1 and "UNSET_VARIABLE_XYZ is not set" in err
    plain = tmp_path / "plain.key"
    write_keypair(plain, keypair(1))
    code, _, err = run(
        node, capsys, "send", "--from", str(plain), "--to", "2", "--amount", str(10**18)
    )
    assert code == 1 and "insufficient balance" in err
    stranger = tmp_path / "stranger.key"
    write_keypair(stranger, Keypair.from_seed(bytes(range(32))))
    code, _, err = run(node, capsys, "send", "--from", str(stranger), "--to", "2", "--amount", "1")
    assert code == 1 and "no such account on the node" in err


def test_delegate_and_wait(
    node: Devnet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "k4.key"
    write_keypair(key, keypair(4))
    code, out, err = run(
        node, capsys, "delegate", "--from", str(key), "--to", "5", "--wait", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["finality"] == "final"
    assert NodeClient(url(node)).account(4)["delegate"] == 5


def test_watch_reads_rates(node: Devnet, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(node, capsys, "watch", "--json", "--count", "2", "--interval", "0.5")
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 0 and first["blocks_per_s"] is None and second["blocks_per_s"] is not None
    assert second["tip"] >= first["tip"] and second["peers"] == 0


def test_watch_leaves_cleanly_on_ctrl_c(node: Devnet) -> None:
    """On a terminal (a pty), as a person runs it: the live table, then Ctrl-C."""
    import pty

    env = {**os.environ, "ECHORAND_NODE": url(node), "COLUMNS": "120"}
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "echorand.tools.cli", "watch", "--interval", "0.2"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
        cwd=Path(node.directory),
    )
    os.close(follower)
    try:
        deadline = time.monotonic() + DEADLINE
        seen = b""
        while b"blocks/s" not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, "watch showed nothing"
            seen += os.read(leader, 4096)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    assert proc.returncode == 0 and b"Traceback" not in err, err.decode()


def test_key_files_seal_and_open_with_the_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    write_keypair(path, keypair(1), passphrase=b"pw", strength="interactive")
    data = path.read_bytes()
    assert data.startswith(b"ERSEAL01") and keypair(1).seed.hex().encode() not in data
    assert load_keypair(path, passphrase=lambda: b"pw").seed == keypair(1).seed
    from echorand.wire.keys import KeyFileError

    with pytest.raises(KeyFileError, match="sealed with a passphrase, and none was given"):
        load_keypair(path)
    damaged = tmp_path / "d.key"
    damaged.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(KeyFileError, match="wrong passphrase, or the file is damaged"):
        load_keypair(damaged, passphrase=lambda: b"pw")


def test_echorand_keys_encrypts_with_a_passphrase_from_a_descriptor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    read, write = os.pipe()
    os.write(write, b"from a pipe\n")
    os.close(write)
    out = tmp_path / "new.key"
    argv = ["keys", "--out", str(out), "--encrypt", "--strength", "interactive"]
    assert main([*argv, "--passphrase-fd", str(read)]) == 0
    public = capsys.readouterr().out.strip()
    assert load_keypair(out, passphrase=lambda: b"from a pipe").public_key.hex() == public
    assert out.stat().st_mode & 0o777 == 0o600
