"""The node processes of a chaos run: the devnet's nodes (`echorand.tools.devnet.Devnet`), each
on its own host (`echorand.tools.chaos.hosts`), with its data directory on its own tmpfs.

Every node listens on its host's address at the same ports (P2P 9000, API 8000) and its
TOML names all the others by address, as on separate machines. The harness is their
supervisor: a node that exits on its own is recorded and started again after
`RESTART_DELAY` (as systemd's `Restart=always` would), except one the nemesis killed,
which the nemesis restarts. At the end each ledger is read from its LMDB directory
(`read_ledger`) after its node stopped.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
from pathlib import Path
from typing import Any

from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger, LedgerError
from echorand.protocol.params import Params
from echorand.tools.chaos.checker import final_round
from echorand.tools.chaos.history import CommittedTx, NodeExit, NodeLedger
from echorand.tools.chaos.hosts import Hosts
from echorand.tools.devnet import Devnet

P2P_PORT = 9000
API_PORT = 8000
RESTART_DELAY = 2.0
"""Seconds before the supervisor starts a node that exited on its own again."""
DISK_GRACE = 5.0
"""Seconds after a disk was freed during which an exit still counts as on a full disk
(the node may have been in the middle of a failed commit)."""
LOG_TAIL = 8


class ChaosNet(Devnet):
    """The devnet's node processes, placed on the hosts of a chaos run."""

    def __init__(
        self,
        directory: Path,
        hosts: Hosts,
        *,
        accounts: int,
        seed: str,
        params: Params,
        disk_bytes: int,
        block_txs: int,
    ) -> None:
        super().__init__(
            directory,
            nodes=hosts.nodes,
            accounts=accounts,
            seed=seed,
            params=params,
            block_txs=block_txs,
        )
        self.hosts = hosts
        self.p2p_ports = [P2P_PORT] * hosts.nodes
        self.api_ports = [API_PORT] * hosts.nodes
        self.disk_bytes = disk_bytes
        self.down: set[int] = set()
        """Nodes the nemesis killed (and will restart)."""
        self.paused: set[int] = set()
        self.disk_full: set[int] = set()
        self.freed_at: dict[int, float] = {}
        self.restart_at: dict[int, float] = {}

    # --- placement ---------------------------------------------------------------------

    def address(self, k: int) -> str:
        return self.hosts.address(k)

    def peers(self, k: int) -> list[str]:
        return [f"{self.address(j)}:{self.p2p_ports[j]}" for j in range(self.nodes) if j != k]

    def disk(self, k: int) -> Path:
        """Node k's tmpfs."""
        return self.directory / f"node-{k}" / "disk"

    def data_dir(self, k: int) -> Path:
        return self.disk(k) / "data"

    def node_command(self, k: int) -> list[str]:
        return [*self.hosts.exec_prefix(k), *super().node_command(k)]

    def create(self) -> None:
        super().create()
        for k in range(self.nodes):
            self.hosts.mount_disk(k, self.disk(k), self.disk_bytes)

    # --- processes -----------------------------------------------------------------------

    def pause(self, k: int) -> None:
        proc = self.procs[k]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGSTOP)
            self.paused.add(k)

    def resume(self, k: int) -> None:
        proc = self.procs[k]
        self.paused.discard(k)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)

    def disk_freed(self, k: int, now: float) -> None:
        """The nemesis freed node k's disk: a node that stopped on it starts at once."""
        self.disk_full.discard(k)
        self.freed_at[k] = now
        if k in self.restart_at:
            self.restart_at[k] = now

    def stop(self, timeout: float = 15.0) -> dict[int, int]:
        """SIGCONT what is paused (a stopped process cannot act on SIGTERM), then stop all."""
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
        self.paused.clear()
        return super().stop(timeout)

    def log_tail(self, k: int, lines: int = LOG_TAIL) -> str:
        try:
            text = self.log_path(k).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def supervise(self, now: float) -> list[NodeExit]:
        """One look at the processes: record those that exited on their own, and start
        those whose restart is due. The exits found."""
        found = []
        for k, proc in enumerate(self.procs):
            if proc is None or proc.poll() is None:
                continue
            disk_full = k in self.disk_full or now - self.freed_at.get(k, -1e9) < DISK_GRACE
            found.append(NodeExit(now, k, proc.returncode, disk_full, self.log_tail(k)))
            self.procs[k] = None
            self.restart_at[k] = now + RESTART_DELAY
        for k, at in list(self.restart_at.items()):
            if now >= at and self.procs[k] is None and k not in self.down:
                del self.restart_at[k]
                self.start_node(k)
        return found

    # --- the end -----------------------------------------------------------------------

    def keep_ledgers(self) -> None:
        """Copy each stopped node's LMDB directory off its tmpfs (which goes with the run) to
        `node-<k>/ledger`, for `echorand chaos --recheck` and for whoever reads a violation."""
        for k in range(self.nodes):
            if self.data_dir(k).is_dir():
                target = self.directory / f"node-{k}" / "ledger"
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(self.data_dir(k), target, ignore=shutil.ignore_patterns("*.lock"))

    def read_ledger(
        self, k: int, status: dict[str, Any] | None, fork_evidence: int | None
    ) -> NodeLedger:
        """Node k's ledger from its LMDB directory (the node must have stopped)."""
        genesis = Genesis.load(self.directory / "genesis")
        empty_supply = (genesis.total, 0, genesis.total)
        try:
            ledger = Ledger.open(self.data_dir(k), genesis)
        except LedgerError as e:
            return NodeLedger(k, 0, 0, (), (), (), empty_supply, f"cannot open: {e}")
        with ledger:
            problem = None
            try:
                ledger.check_store()
            except LedgerError as e:
                problem = str(e)
            hashes, empties, txs = [], [], []
            for r in range(1, ledger.tip + 1):
                block = ledger.block(r)
                block_hash = ledger.hash(r)
                assert block is not None and block_hash is not None
                hashes.append(block_hash.hex())
                if block.is_empty:
                    empties.append(r)
                    continue
                txs += [
                    CommittedTx(r, tx.id.hex(), tx.sender.hex(), tx.nonce)
                    for tx in block.transactions
                ]
            return NodeLedger(
                node=k,
                tip=ledger.tip,
                final_round=final_round(status, ledger.tip),
                hashes=tuple(hashes),
                empty_rounds=tuple(empties),
                txs=tuple(txs),
                supply=(genesis.total, ledger.minted, ledger.supply),
                store_problem=problem,
                fork_evidence=fork_evidence,
            )
