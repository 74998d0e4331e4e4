"""No equivocation after a crash, on real processes (PROTOCOL §6).

Two nodes, each with half the stake: neither passes t_h alone, so when one is killed the
round waits for it, and the restarted node runs the same round again. All traffic between
them goes through a recording proxy in this process, which sees every message each node
sends. The victim is SIGKILLed at random moments of its rounds (a seeded schedule) under a
steady load of transfers, and restarted at once from its ledger; at the end no two messages
of one account for one round, step and slot may differ.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

from _helpers import DEADLINE, stop_cleanly, tip, until
from _proxy import Proxy

from echorand.core.signed import slot
from echorand.tools.devnet import Devnet, http_json, sign_transfers

SEED = "crash-equivocation"
ACCOUNTS = 20
KILLS = 12
VICTIM, SURVIVOR = 1, 0


def test_a_node_killed_at_random_points_of_its_rounds_never_equivocates(tmp_path: Path) -> None:
    rng = random.Random(7)
    # The survivor listens; the victim dials it through the proxy (one link, all recorded).
    net = Devnet(tmp_path, nodes=2, accounts=ACCOUNTS, seed=SEED)
    proxy = Proxy(("127.0.0.1", net.p2p_ports[SURVIVOR]), record=True)
    net.dials = [[], [f"127.0.0.1:{proxy.port}"]]
    net.create()
    txs = sign_transfers(SEED, ACCOUNTS, 40 * ACCOUNTS, net.genesis_hash)
    stop = threading.Event()

    def load() -> None:
        """Transfers to both nodes, each sender to the node that runs it, in nonce order."""
        for j in range(0, len(txs), ACCOUNTS):
            if stop.is_set():
                return
            batch = txs[j : j + ACCOUNTS]
            for k in (SURVIVOR, VICTIM):
                mine = [tx for i, tx in enumerate(batch) if i % 2 == k]
                # the victim may be down: a real client would retry, these are spare
                with contextlib.suppress(OSError):
                    http_json(net.url(k, "/tx"), b"".join(mine), timeout=2)
            time.sleep(0.15)

    try:
        with net:
            net.start()
            net.wait_ready(DEADLINE)
            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            for _ in range(KILLS):
                before = tip(net, SURVIVOR)
                until(
                    lambda b=before: tip(net, SURVIVOR) > b,
                    "a commit before the kill",
                    net,
                    interval=0.02,
                )
                time.sleep(rng.uniform(0.0, 0.4))  # somewhere in the next round
                assert net.kill(VICTIM, signal.SIGKILL) == -signal.SIGKILL
                net.start_node(VICTIM)
                net.wait_ready(DEADLINE, nodes=iter([VICTIM]))
            end = tip(net, SURVIVOR)
            until(lambda: tip(net, SURVIVOR) >= end + 3, "progress after the last restart", net)
            stop.set()
            loader.join()
            stop_cleanly(net)
    finally:
        stop.set()
        proxy.close()

    victim_accounts = {a for a in range(ACCOUNTS) if a % 2 == VICTIM}
    by_slot: dict[tuple[int, ...], set[bytes]] = defaultdict(set)
    copies: dict[tuple[int, ...], int] = defaultdict(int)
    for msg in proxy.messages("up"):
        if hasattr(msg, "step") and msg.sender in victim_accounts:  # type: ignore[attr-defined]
            s = slot(msg)  # type: ignore[arg-type]
            by_slot[s].add(msg.encode())  # type: ignore[attr-defined]
            copies[s] += 1
    assert by_slot, "the proxy saw no message of the victim"
    equivocations = {s: len(v) for s, v in by_slot.items() if len(v) > 1}
    assert equivocations == {}, f"two different messages for one slot: {equivocations}"
    # The schedule did what it is for: some kills hit a round the victim had started, and
    # the restarted victim filled slots it had filled before (with the same message).
    resent = [s for s, n in copies.items() if n > 1]
    assert resent, "no restart re-ran a round: the test proved nothing"
