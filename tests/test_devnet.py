"""A devnet of 4 real node processes on loopback (echorand.devnet, echorand.node).

No timed assertions: every wait polls a condition under a generous deadline, so a
loaded 2-core machine only makes the tests slower.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from echorand.client import http_json
from echorand.devnet import Devnet, sign_transfers
from echorand.transactions import Transaction

NODES = 4
ACCOUNTS = 40
SEED = "test-devnet"
DEADLINE = 120.0


def until(condition: Callable[[], object], what: str, net: Devnet, timeout: float = DEADLINE):
    """Poll until `condition()` is truthy (returning it); fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        net.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {timeout} s")
        time.sleep(0.1)


def tip(net: Devnet, k: int) -> int:
    doc = net.status(k)
    return -1 if doc is None else doc["tip"]["round"]


def log_text(net: Devnet, k: int) -> str:
    return net.log_path(k).read_text(errors="replace")


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("devnet"), nodes=NODES, accounts=ACCOUNTS, seed=SEED)
    net.create()
    with net:
        net.start()
        net.wait_ready(DEADLINE)
        yield net
    for proc in net.procs:
        assert proc is not None and proc.poll() is not None, "a node process outlived the devnet"


def submit(net: Devnet, k: int, txs: list[bytes]) -> dict:
    code, doc = http_json(net.url(k, "/tx"), b"".join(txs))
    assert code == 200, doc
    return doc


def test_four_processes_commit_transactions_and_hold_the_same_chain(devnet: Devnet) -> None:
    txs = sign_transfers(SEED, ACCOUNTS, 3 * ACCOUNTS, devnet.genesis_hash)
    # Each sender's transfers to one node, in nonce order (a node refuses nonce gaps).
    for k in range(NODES):
        mine = [tx for j, tx in enumerate(txs) if (j % ACCOUNTS) % NODES == k]
        assert submit(devnet, k, mine)["accepted"] == len(mine)
    ids = {Transaction.from_bytes(tx).id.hex() for tx in txs}

    def committed() -> bool:
        found: set[str] = set()
        for r in range(1, tip(devnet, 0) + 1):
            code, doc = http_json(devnet.url(0, f"/block/{r}"))
            assert code == 200, doc
            found.update(doc["tx_ids"])
        return ids <= found

    until(committed, "the transfers to be committed at node 0", devnet)
    target = tip(devnet, 0)
    until(
        lambda: all(tip(devnet, k) >= target for k in range(NODES)),
        f"every node at round {target}",
        devnet,
    )
    chains = [devnet.hashes(k, 1, target) for k in range(NODES)]
    assert all(len(c) == target for c in chains)
    assert all(c == chains[0] for c in chains), "the nodes hold different chains"
    # Every account sent 3 transfers and received 3 of 1 unit; all nonces are at 3.
    for account in (0, ACCOUNTS // 2, ACCOUNTS - 1):
        for k in range(NODES):
            code, doc = http_json(devnet.url(k, f"/account/{account}"))
            assert code == 200 and doc["nonce"] == 3, doc


def test_blocks_become_final_on_every_node(devnet: Devnet) -> None:
    """Every node counts the final votes (its own included) past t_f: its final round
    moves up, and /block says final up to it and tentative after (PROTOCOL §6)."""
    start = max(tip(devnet, k) for k in range(NODES))
    until(
        lambda: all(devnet.status(k)["final_round"] > start for k in range(NODES)),  # type: ignore[index]
        f"every node's final round past {start}",
        devnet,
    )
    for k in range(NODES):
        doc = devnet.status(k)
        assert doc is not None and doc["halted"] is None and doc["forks"] == 0
        final, last = doc["final_round"], doc["tip"]["round"]
        client = devnet.client(k)
        assert client.block(final)["final"] is True
        assert client.block(final)["final_certificate"] is not None
        if last > final:
            assert client.block(last)["final"] is False


def test_a_node_killed_mid_round_restarts_catches_up_and_agrees(devnet: Devnet) -> None:
    k = NODES - 1
    until(lambda: tip(devnet, k) >= 3, "node 3 to commit a few blocks", devnet)
    # Keep some transactions flowing so the killed node has real blocks to catch up on.
    txs = sign_transfers(SEED, ACCOUNTS, 5 * ACCOUNTS, devnet.genesis_hash)
    before = tip(devnet, k)
    assert devnet.kill(k, signal.SIGKILL) == -signal.SIGKILL
    # The others go on without it (3 of 4 nodes hold 75 % of the stake > t_h).
    base = [tip(devnet, j) for j in range(k)]
    nonce_from = 3 * ACCOUNTS  # the first test sent 3 per account
    later = [tx for j, tx in enumerate(txs) if j >= nonce_from]
    for j in range(k):
        mine = [tx for i, tx in enumerate(later) if ((i + nonce_from) % ACCOUNTS) % NODES == j]
        code, doc = http_json(devnet.url(j, "/tx"), b"".join(mine))
        assert code in (200, 400), doc
    until(
        lambda: all(tip(devnet, j) >= base[j] + 10 for j in range(k)),
        "the other nodes to commit 10 blocks without node 3",
        devnet,
    )
    devnet.start_node(k)
    devnet.wait_ready(DEADLINE, nodes=iter([k]))
    opened = [int(m) for m in re.findall(r"ledger \S+ at round (\d+);", log_text(devnet, k))]
    assert len(opened) == 2 and opened[1] >= before, opened  # reopened where it stopped
    target = max(tip(devnet, j) for j in range(k))
    until(lambda: tip(devnet, k) >= target + 3, f"node 3 past round {target + 3}", devnet)
    # Restarted from its ledger, it proposes valid blocks: they carry CERT_{r-1} (§16).
    until(lambda: produced_by(devnet, k, target), "a block by node 3 after its restart", devnet)
    forks, compared = devnet.forks()
    assert compared >= target and forks == 0
    for j in range(NODES):
        assert "bad carried certificate" not in log_text(devnet, j)


def produced_by(net: Devnet, k: int, after: int) -> bool:
    """Whether node 0 committed a block after round `after` produced by one of node k's
    accounts (its carried certificate passed every node's check)."""
    for r in range(after + 1, tip(net, 0) + 1):
        code, doc = http_json(net.url(0, f"/block/{r}"))
        if code == 200 and doc["producer"] is not None and doc["producer"] % NODES == k:
            return True
    return False


def test_ports_and_directories_are_per_node(devnet: Devnet) -> None:
    assert len(set(devnet.p2p_ports + devnet.api_ports)) == 2 * NODES
    for k in range(NODES):
        assert (Path(devnet.directory) / f"node-{k}" / "data" / "data.mdb").exists()


def test_the_load_driver_resubmits_what_a_full_pool_refused() -> None:
    """`_submit` hands back, in order, the transactions refused for a transient reason."""
    import asyncio

    import aiohttp
    import orjson
    from aiohttp import web

    from echorand.devnet import LoadStats, Submitted, _submit

    txs = [bytes([i]) * 153 for i in range(4)]
    errors = [None, "mempool full: fee too low", "nonce too high", "bad signature"]

    async def handler(request: web.Request) -> web.Response:
        assert await request.read() == b"".join(txs)
        results = [
            {"id": "00", "accepted": e is None, **({"error": e} if e else {})} for e in errors
        ]
        return web.Response(body=orjson.dumps({"accepted": 1, "results": results}), status=400)

    async def main() -> tuple[Submitted, LoadStats]:
        app = web.Application()
        app.add_routes([web.post("/tx", handler)])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        stats = LoadStats()
        try:
            async with aiohttp.ClientSession() as session:
                retry = await _submit(session, f"http://127.0.0.1:{port}/tx", txs, stats)
        finally:
            await runner.cleanup()
        return retry, stats

    answer, stats = asyncio.run(main())
    assert answer == Submitted(txs[1:3], 0.0)
    assert stats.retried == 2 and stats.accepted == 1 and stats.submitted == 4
    assert stats.refused == {e: 1 for e in errors[1:]}


def test_the_load_makes_only_the_keys_it_uses() -> None:
    """A few transfers on a large devnet sign with the keys of the first accounts only, and
    are the first transfers of a longer load."""
    chain = bytes(range(32))
    few = sign_transfers(SEED, 10**9, 3, chain)
    assert few == sign_transfers(SEED, 50, 51, chain)[:3]
    txs = [Transaction.from_bytes(t) for t in sign_transfers(SEED, 3, 4, chain)]
    assert [t.nonce for t in txs] == [0, 0, 0, 1]
    assert txs[2].recipient == txs[0].sender and txs[3].sender == txs[0].sender
