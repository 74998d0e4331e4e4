"""The hosts of a chaos run: real network namespaces, veth pairs and a bridge; cuts, links
and tbf; tmpfs disks; and the cleanup of what a dead run left. Needs root (skipped, saying
why, where namespaces cannot be made)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from echorand.tools.chaos import hosts as hostlib
from echorand.tools.chaos.hosts import Hosts

PORT = 7000
LISTEN = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    c, _ = s.accept(); c.close()\n"
)
DIAL = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
    "except OSError:\n"
    "    sys.exit(1)\n"
)

pytestmark = pytest.mark.skipif(
    hostlib.preflight(tc=True) is not None, reason=str(hostlib.preflight(tc=True))
)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    made = Hosts(3)
    try:
        made.create()
        yield made
    finally:
        made.destroy()
    assert not _namespaces(made.run_name)


def _namespaces(run_name: str) -> list[str]:
    out = hostlib.run("ip", "netns", "list")
    return [line.split()[0] for line in out.splitlines() if line.startswith(run_name + "-")]


def _listen(hosts: Hosts, k: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*hosts.exec_prefix(k), sys.executable, "-c", LISTEN, hosts.address(k), str(PORT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _reaches(hosts: Hosts, a: int, b: int) -> bool:
    """Whether node a can open a TCP connection to node b."""
    argv = [*hosts.exec_prefix(a), sys.executable, "-c", DIAL, hosts.address(b), str(PORT)]
    return subprocess.run(argv, check=False).returncode == 0


def test_nodes_reach_each_other_and_the_harness_reaches_them_from_the_hub(hosts: Hosts) -> None:
    assert len(_namespaces(hosts.run_name)) == 4
    listeners = [_listen(hosts, k) for k in range(3)]
    try:
        assert _reaches(hosts, 0, 1) and _reaches(hosts, 2, 0)
        mine = os.readlink("/proc/thread-self/ns/net")
        with hosts.entered():
            assert os.readlink("/proc/thread-self/ns/net") != mine
            socket.create_connection((hosts.address(2), PORT), timeout=2).close()
        assert os.readlink("/proc/thread-self/ns/net") == mine
    finally:
        for proc in listeners:
            proc.kill()
            proc.wait()


def test_a_cut_separates_two_nodes_only_until_it_is_mended(hosts: Hosts) -> None:
    listeners = [_listen(hosts, k) for k in range(3)]
    try:
        hosts.cut(0, 1)
        assert not _reaches(hosts, 0, 1) and not _reaches(hosts, 1, 0)
        assert _reaches(hosts, 0, 2) and _reaches(hosts, 2, 1)  # 2 bridges them
        hosts.mend(0, 1)
        assert _reaches(hosts, 0, 1) and _reaches(hosts, 1, 0)
        hosts.link(2, up=False)
        assert not _reaches(hosts, 0, 2) and not _reaches(hosts, 2, 1)
        hosts.link(2, up=True)
        assert _reaches(hosts, 0, 2) and _reaches(hosts, 2, 1)
    finally:
        for proc in listeners:
            proc.kill()
            proc.wait()


def test_a_slow_link_is_shaped_both_ways_and_unshaped(hosts: Hosts) -> None:
    hosts.throttle(1, 256)
    node_side = hostlib.run("tc", "-n", hosts.namespace(1), "qdisc", "show", "dev", "eth0")
    hub_side = hostlib.run("tc", "-n", hosts.hub, "qdisc", "show", "dev", hosts.hub_link(1))
    assert "tbf" in node_side and "256Kbit" in node_side and "tbf" in hub_side
    hosts.unthrottle(1)
    assert "tbf" not in hostlib.run("tc", "-n", hosts.namespace(1), "qdisc", "show")


def test_a_disk_fills_to_the_last_byte_and_empties(tmp_path: Path, hosts: Hosts) -> None:
    disk = tmp_path / "disk"
    hosts.mount_disk(0, disk, 1 << 20)
    (disk / "data").write_bytes(b"x" * 1000)
    assert hostlib.fill(disk) > 0
    with pytest.raises(OSError, match="No space left"), (disk / "more").open("wb") as f:
        f.write(b"y" * 8192)
        f.flush()
    hostlib.empty(disk)
    (disk / "more").write_bytes(b"y" * 8192)


def test_what_a_dead_run_left_is_found_and_removed(tmp_path: Path) -> None:
    dead = subprocess.run(["true"], check=True)
    pid = int(subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout)
    assert dead.returncode == 0 and not Path(f"/proc/{pid}").exists()
    left = Hosts(2, owner=pid)
    left.create()
    disk = tmp_path / "disk"
    left.mount_disk(0, disk, 1 << 20)
    alive = Hosts(1)  # this process's own run: not a leftover
    alive.create()
    try:
        namespaces, mounts = hostlib.leftovers()
        assert set(_namespaces(left.run_name)) <= set(namespaces)
        assert disk in mounts
        assert not set(_namespaces(alive.run_name)) & set(namespaces)
        removed = hostlib.clean()
        assert f"tmpfs {disk}" in removed and f"netns {left.hub}" in removed
        assert not _namespaces(left.run_name) and _namespaces(alive.run_name)
        assert not os.path.ismount(disk)
    finally:
        alive.destroy()
        left.destroy()
