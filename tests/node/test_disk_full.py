"""A full disk (ENOSPC): the ledger refuses the block whole and stays usable; the node stops
cleanly (exit status 75, one clear log line) and goes on from its ledger once there is room.

The disk is a small tmpfs filled to the last byte by a ballast file (as `echorand chaos`
does); mounting one needs root, so these tests are skipped without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _chain import certificate, proposed_block
from _helpers import DEADLINE, stop_cleanly, tip, until

from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import DiskFullError, Ledger
from echorand.node.node import EXIT_DISK_FULL
from echorand.tools.chaos.hosts import HostsError, empty, fill, mount_tmpfs, unmount
from echorand.tools.devnet import Devnet
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.keys import load_node_keys

DISK = 4 << 20


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "disk"
    try:
        mount_tmpfs(path, DISK, "echorand-test-disk")
    except HostsError as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    try:
        yield path
    finally:
        unmount(path)


def test_a_full_disk_refuses_a_block_whole_and_the_ledger_goes_on_once_there_is_room(
    tmp_path: Path, disk: Path
) -> None:
    genesis = create_devnet(tmp_path / "genesis", accounts=4, nodes=1, seed="disk")
    keys = [kp for _, kp in load_node_keys(node_keys_path(tmp_path / "genesis", 0)).keypairs()]
    chain = genesis.hash
    with Ledger.open(disk / "ledger", genesis) as ledger:

        def next_block():
            carried = ledger.certificate_to_carry()
            block = proposed_block(
                ledger.tip + 1, ledger.tip_hash, ledger.tip_seed, 0, keys[0], (), carried,
                chain=chain,
            )  # fmt: skip
            return block, certificate(block, list(enumerate(keys[:3])), chain=chain)

        ledger.apply(*next_block())
        assert fill(disk) > 0
        refused = None
        for _ in range(10_000):  # LMDB may reuse a few free pages first
            block, cert = next_block()
            tip, records = ledger.tip, ledger.state.records()
            try:
                ledger.apply(block, cert)
            except DiskFullError as e:
                refused = (block, cert, e)
                break
        assert refused is not None, "the full disk never refused a block"
        block, cert, error = refused
        assert "no room on the disk" in str(error) and f"round {tip}" in str(error)
        assert ledger.tip == tip and ledger.state.records() == records
        ledger.check_store()
        empty(disk)
        ledger.apply(block, cert)
        assert ledger.tip == tip + 1
    with Ledger.open(disk / "ledger", genesis) as ledger:
        assert ledger.tip == tip + 1 and ledger.hash(tip + 1) == block.hash
        ledger.check_store()


class DiskNet(Devnet):
    """A one-node devnet whose ledger lives on a given disk."""

    def __init__(self, directory: Path, disk: Path) -> None:
        super().__init__(directory, nodes=1, accounts=4, seed="disk-node")
        self.disk = disk

    def data_dir(self, k: int) -> Path:
        return self.disk / "data"


def test_a_node_stops_cleanly_on_a_full_disk_and_starts_again_from_its_ledger(
    tmp_path: Path, disk: Path
) -> None:
    net = DiskNet(tmp_path / "net", disk)
    net.create()
    with net:
        net.start()
        net.wait_ready(DEADLINE)
        until(lambda: tip(net, 0) >= 3, "three blocks", net)
        fill(disk)
        proc = net.procs[0]
        assert proc is not None
        assert proc.wait(DEADLINE) == EXIT_DISK_FULL
        log = net.log_path(0).read_text(errors="replace")
        assert "stopped, the disk is full:" in log and "no room on the disk" in log
        net.procs[0] = None
        with Ledger.open(net.data_dir(0), Genesis.load(net.directory / "genesis")) as ledger:
            ledger.check_store()
            stopped_at = ledger.tip
        assert f"the ledger stays at round {stopped_at}" in log
        empty(disk)
        net.start_node(0)
        net.wait_ready(DEADLINE)
        until(lambda: tip(net, 0) > stopped_at + 2, "blocks after the restart", net)
        stop_cleanly(net)
