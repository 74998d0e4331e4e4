"""Forks on real processes (PROTOCOL §6): the two halves of a partitioned devnet commit
different tentative blocks, and converge when the partition heals.

No forged signature and no adversary code in the node: a validator that runs twice, the
classic operator mistake. One devnet genesis, three key groups by stake (10 accounts of
equal balance dealt round robin to three key files): B 40 %, H1 30 %, H2 30 %. The
thresholds are set for it (N_c = 50, t_h = 25, t_f = 47): a side with 70 % of the stake
certifies its own blocks, all tentative; only the three groups together make a block final.

1. B_a (B's keys), H1 and H2 run as one network, B_a - H1 - H2, H2 dialing H1 through a
   proxy of this test; blocks become final.
2. The proxy cuts H1 - H2. H1 and B_a go on. From H2's side B looks down, and its operator
   starts it there again: B_b, the same key file on a new data directory (its process runs
   from the beginning, its one link, to H2, closed until now). It syncs from H2 and joins
   it: each side commits its own blocks. Then H2's side is frozen for some seconds (both
   processes stopped, SIGSTOP, like paused hosts: they stay in step with each other), so
   that H1's side is well ahead when the partition heals.
3. The H1 - H2 link comes back, slow towards H2 (a one-way delay: the adversarial timing),
   and H2's side runs again: H1 sees the chain of the side behind it, from the messages of
   that side's producers, before H2 fetches H1's chain and switches. Once H1 reports the
   fork, the operator stops B_b. (Two copies of a validator on one network sign different
   votes for one slot as soon as their views differ; with 40 % of the stake signing twice
   no threshold is safe, and a certificate against a final block would rightly halt the
   nodes. So B_b never runs where B_a is reachable.)
4. The chain the fork choice prefers wins; the other side rolls back, its transfers back
   in its pool. The three nodes hold one chain, keep committing and make blocks final again;
   the final round never went down, nobody halted, every node stops cleanly on SIGTERM and
   leaves a consistent ledger.

Under a steady load of transfers (each sender's to the node of its side, in nonce order).
No timed assertion: every wait polls under a generous deadline.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from _helpers import until
from _proxy import Proxy

from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger
from echorand.ledger.mempool import ALREADY_QUEUED
from echorand.tools.client import NodeClient, http_json
from echorand.tools.client.commands import metric_values
from echorand.tools.devnet import DEVNET_PARAMS, Devnet, sign_transfers
from echorand.wire.transactions import NONCE_TOO_LOW, Transaction

SEED = "fork-recovery"
ACCOUNTS = 10
BA, H1, H2, BB = 0, 1, 2, 3
KEYS = [0, 1, 2, 0]
"""Key file of each process: key file 0 holds accounts 0, 3, 6, 9 (B, 40 %)."""
PARAMS = replace(DEVNET_PARAMS, t_h=25, t_f=47, lam_ms=200)
"""Rounds of about half a second: the side ahead stays well inside the ledger's undo window
(DEFAULT_UNDO_ROUNDS) past the fork until the fork is resolved. (A node fetches another
chain from `rollback_floor + 1`: a fork below it cannot be compared, and halts the node.)"""
DELAY = 2.0
"""Seconds the healed link holds what goes to H2: H2 fetches H1's chain after three such
trips (H1's hello, then two requests), H1 fetches H2's after one."""
LEAD = 16
"""Rounds H1's side is ahead when the partition heals: more than the delay hides (H2 sees
H1 as it was DELAY seconds before), so that no round of one side meets the same round of
the other, where votes of one fork could decide a block of the other."""
DEADLINE = 60.0
HELD = frozenset({ALREADY_QUEUED, NONCE_TOO_LOW})
"""Refusals of a transfer submitted again (its first answer was lost): the node has it."""


class Load:
    """Transfers, one per account per second: even senders' to H1, odd ones' to H2 (the
    node of their side), each in nonce order; a request that was not answered is sent
    again, before anything new. One thread per node."""

    def __init__(self, net: Devnet) -> None:
        self.net = net
        self.txs = sign_transfers(SEED, ACCOUNTS, 200 * ACCOUNTS, net.genesis_hash)
        self.accepted: set[str] = set()
        self.refused: dict[str, int] = {}
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(k, parity), daemon=True)
            for k, parity in ((H1, 0), (H2, 1))
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join()

    def _run(self, k: int, parity: int) -> None:
        queue: list[bytes] = []
        for j in range(0, len(self.txs), ACCOUNTS):
            if self.stopped.wait(1.0):
                return
            queue += [tx for i, tx in enumerate(self.txs[j : j + ACCOUNTS]) if i % 2 == parity]
            try:
                _, doc = http_json(self.net.url(k, "/tx"), b"".join(queue), timeout=10.0)
            except OSError:
                continue  # not answered: all of it again
            with self._lock:
                for tx, result in zip(queue, doc["results"], strict=True):
                    if result["accepted"] or result["error"] in HELD:
                        self.accepted.add(Transaction.from_bytes(tx).id.hex())
                    else:
                        self.refused[result["error"]] = self.refused.get(result["error"], 0) + 1
            queue = []


class Watch(threading.Thread):
    """/status of the running nodes, over and over: every final round and halt seen."""

    def __init__(self, net: Devnet) -> None:
        super().__init__(daemon=True)
        self.net = net
        self.finals: dict[int, list[int]] = {k: [] for k in range(net.nodes)}
        self.halted: dict[int, str] = {}
        self.paused: set[int] = set()
        """Nodes not to ask (their processes are stopped)."""
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.3):
            for k, proc in enumerate(self.net.procs):
                asked = proc is not None and k not in self.paused
                doc = self.net.status(k) if asked else None
                if doc is None:
                    continue
                self.finals[k].append(doc["final_round"])
                if doc["halted"]:
                    self.halted[k] = doc["halted"]


def status(net: Devnet, k: int) -> dict[str, Any]:
    doc = net.status(k)
    assert doc is not None, f"node {k} does not answer /status"
    return doc


def tip(net: Devnet, k: int) -> int:
    return status(net, k)["tip"]["round"]


def final_round(net: Devnet, k: int) -> int:
    return status(net, k)["final_round"]


def forks(net: Devnet, k: int) -> set[int]:
    """The rounds of the fork evidence node k reports."""
    return {f["round"] for f in NodeClient(net.url(k, "")).get_json("/forks")["forks"]}


def metric(net: Devnet, k: int, name: str) -> float:
    return metric_values(NodeClient(net.url(k, "")).metrics_text())[f"echorand_{name}"]


def fork_round(net: Devnet, first: int) -> int | None:
    """The first round from `first` on where H1 and H2 hold different blocks, if any."""
    last = min(tip(net, H1), tip(net, H2))
    ours, theirs = net.hashes(H1, first, last), net.hashes(H2, first, last)
    return next(
        (first + i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), None
    )


def blocks(net: Devnet, k: int, first: int, last: int) -> dict[int, dict[str, Any]]:
    client = NodeClient(net.url(k, ""))
    return {r: dict(client.block(r)) for r in range(first, last + 1)}


def transfers(net: Devnet, k: int, first: int) -> int:
    """The transfers in node k's blocks from round `first` to its tip."""
    return sum(doc["tx_count"] for doc in blocks(net, k, first, tip(net, k)).values())


def same_chain(net: Devnet, nodes: list[int]) -> int | None:
    """The lowest tip of `nodes` when they all hold the same blocks up to it."""
    low = min(tip(net, k) for k in nodes)
    chains = [net.hashes(k, 1, low) for k in nodes]
    return low if all(c == chains[0] for c in chains) else None


def test_two_halves_that_committed_different_blocks_converge_after_the_partition_heals(
    tmp_path: Path,
) -> None:
    net = Devnet(
        tmp_path, nodes=4, accounts=ACCOUNTS, seed=SEED, params=PARAMS, keys=KEYS,
        min_peers=[1, 2, 1, 1],
    )  # fmt: skip
    mid = Proxy(("127.0.0.1", net.p2p_ports[H1]))  # H2 dials H1 through it
    side = Proxy(("127.0.0.1", net.p2p_ports[H2]))  # B_b dials H2 through it
    side.cut()
    net.dials = [[f"127.0.0.1:{net.p2p_ports[H1]}"], [], [mid.address], [side.address]]
    net.create()
    load, watch = Load(net), Watch(net)

    def not_halted() -> None:
        assert watch.halted == {}, f"halted: {watch.halted}"

    def wait(what: str, condition: Callable[[], Any]) -> Any:
        """`until`, failing at once when a node exited or halted."""
        return until(condition, what, net, timeout=DEADLINE, check=not_halted)

    t0 = time.monotonic()

    def say(what: str) -> None:  # shown when the test fails
        running = [k for k in range(net.nodes) if net.procs[k] and k not in watch.paused]
        tips = [tip(net, k) if k in running else None for k in range(net.nodes)]
        print(f"{time.monotonic() - t0:6.1f} s  tips {tips}  {what}")

    def pause(*nodes: int) -> None:
        """Freeze processes (SIGSTOP: a paused host); they stay in step with each other."""
        watch.paused.update(nodes)
        for k in nodes:
            net.procs[k].send_signal(signal.SIGSTOP)  # type: ignore[union-attr]

    def resume(*nodes: int) -> None:
        for k in nodes:
            net.procs[k].send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        watch.paused.difference_update(nodes)

    try:
        with net:
            net.start()
            net.wait_ready(DEADLINE, nodes=iter([BA, H1, H2]))
            load.start()
            watch.start()

            # 1. one network: blocks become final
            wait("final blocks", lambda: min(final_round(net, k) for k in (BA, H1, H2)) >= 3)
            split = min(tip(net, H1), tip(net, H2))
            say("final blocks; the partition")

            # 2. the partition; B runs on both sides
            mid.cut()
            side.restore()
            wait("B_b to join H2", lambda: status(net, BB)["sync"]["joined"])
            fork = wait("the halves to commit different blocks", lambda: fork_round(net, split))
            wait("blocks of H2's side with transfers", lambda: transfers(net, H2, fork) > 0)
            chains = {H2: blocks(net, H2, fork, tip(net, H2))}
            frozen = max(tip(net, H2), tip(net, BB))
            say(f"the halves part at round {fork}; H2's side is frozen")
            pause(H2, BB)
            wait("H1's side well ahead", lambda: tip(net, H1) >= frozen + 1 + LEAD)
            chains[H1] = blocks(net, H1, fork, tip(net, H1))
            assert chains[H1][fork]["hash"] != chains[H2][fork]["hash"]

            # 3. the partition heals, slowly towards H2, and H2's side runs again
            say("the partition heals, slowly towards H2")
            mid.restore(down=DELAY)
            resume(H2, BB)
            assert max(final_round(net, k) for k in (BA, H1, H2)) < fork, "final on a fork"
            wait("H1 to report the fork", lambda: fork in forks(net, H1))
            say("H1 reports the fork; B_b is stopped")
            assert net.kill(BB, signal.SIGTERM) == 0, "B_b did not stop cleanly"
            mid.set_delay(down=0.0)

            # 4. one chain again
            live = [BA, H1, H2]
            wait("H2 to report the fork", lambda: fork in forks(net, H2))
            common = wait("one chain", lambda: same_chain(net, live))
            say(f"one chain up to round {common}")
            kept = net.hashes(H1, fork, fork)[0]
            loser = H2 if kept == chains[H1][fork]["hash"] else H1
            assert kept == chains[H1 + H2 - loser][fork]["hash"]
            assert metric(net, loser, "rollbacks_total") >= 1
            assert metric(net, H1 + H2 - loser, "rollbacks_total") == 0
            wait("more blocks on one chain", lambda: (same_chain(net, live) or 0) >= common + 3)
            wait(
                "final blocks past the fork", lambda: min(final_round(net, k) for k in live) >= fork
            )
            say("final blocks past the fork")

            # The transfers of the rolled-back blocks are not lost. Every accepted transfer
            # applies on the winning chain (each sender's went to one side, in nonce
            # order), so every one of them ends up there.
            load.stop()
            rolled_back = {tx for doc in chains[loser].values() for tx in doc["tx_ids"]}
            assert rolled_back, "the losing side committed no transfer: the test proved nothing"

            def committed() -> set[str]:
                return {
                    tx for doc in blocks(net, H1, 1, tip(net, H1)).values() for tx in doc["tx_ids"]
                }

            on_chain = wait(
                "every accepted transfer on the chain",
                lambda: (c := committed()) >= load.accepted and c,
            )
            assert rolled_back <= on_chain and load.refused == {}, load.refused
            for k in live:
                supply = status(net, k)["supply"]
                assert supply["total"] == supply["genesis"] + supply["minted"]
            watch.stopped.set()
            watch.join()
            for k in live:
                assert net.kill(k, signal.SIGTERM) == 0, f"node {k} did not stop cleanly"
    finally:
        load.stopped.set()
        watch.stopped.set()
        mid.close()
        side.close()

    assert watch.halted == {}
    for k, finals in watch.finals.items():
        assert finals == sorted(finals), f"node {k}'s final round went down: {finals}"
    genesis = Genesis.load(tmp_path / "genesis")
    for k in range(net.nodes):
        with Ledger.open(tmp_path / f"node-{k}" / "data", genesis) as ledger:
            ledger.check_store()
