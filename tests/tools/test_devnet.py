"""A devnet of 4 real node processes on loopback (echorand.tools.devnet, echorand.node.node).

No timed assertions: every wait polls a condition under a generous deadline, so a
loaded 2-core machine only makes the tests slower.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from _helpers import DEADLINE, running, stop_cleanly, tip, until

from echorand.tools.client import http_json
from echorand.tools.devnet import DEVNET_PARAMS, Devnet, sign_transfers
from echorand.wire.messages import Block
from echorand.wire.transactions import Transaction

NODES = 4
ACCOUNTS = 40
SEED = "test-devnet"


def log_text(net: Devnet, k: int) -> str:
    return net.log_path(k).read_text(errors="replace")


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("devnet"), nodes=NODES, accounts=ACCOUNTS, seed=SEED)
    with running(net):
        yield net


def submit(net: Devnet, k: int, txs: list[bytes]) -> None:
    """Submit `txs` to node k: each one accepted."""
    code, doc = http_json(net.url(k, "/tx"), b"".join(txs))
    assert code == 200 and doc["accepted"] == len(txs), doc


def next_transfers(
    net: Devnet, count: int, nodes: range
) -> tuple[dict[int, list[bytes]], dict[int, int]]:
    """`count` transfers of each account that a node of `nodes` runs (account a runs on node
    a % NODES), from the nonce that node takes next (whatever tests ran before), each
    sender's in nonce order: (the transfers by node, the first nonce by account)."""
    starts = {}
    for a in range(ACCOUNTS):
        if a % NODES in nodes:
            code, doc = http_json(net.url(a % NODES, f"/account/{a}"))
            assert code == 200, doc
            starts[a] = doc["nonce"] + doc["queued"]
    top = max(starts.values()) + count
    txs = sign_transfers(SEED, ACCOUNTS, top * ACCOUNTS, net.genesis_hash)  # nonce-major
    by_node: dict[int, list[bytes]] = {k: [] for k in nodes}
    for nonce in range(top):
        for a, start in starts.items():
            if start <= nonce < start + count:
                by_node[a % NODES].append(txs[nonce * ACCOUNTS + a])
    return by_node, starts


def test_four_processes_commit_transactions_and_hold_the_same_chain(devnet: Devnet) -> None:
    by_node, starts = next_transfers(devnet, 3, range(NODES))
    # Each sender's transfers to the node that runs it, in nonce order (no nonce gap).
    for k, mine in by_node.items():
        submit(devnet, k, mine)
    txs = [tx for mine in by_node.values() for tx in mine]
    assert len(txs) == 3 * ACCOUNTS
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
    # Every account sent 3 transfers: every node holds each nonce 3 further on.
    for account in (0, ACCOUNTS // 2, ACCOUNTS - 1):
        for k in range(NODES):
            code, doc = http_json(devnet.url(k, f"/account/{account}"))
            assert code == 200 and doc["nonce"] == starts[account] + 3, doc


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
            # It may become final while we ask: tentative only if past the final round read
            # before, final only if within the one read after.
            block = client.block(last)
            after = devnet.status(k)["final_round"]  # type: ignore[index]
            assert (block["final"] and last <= after) or (not block["final"] and last > final)
            assert (block["final_certificate"] is not None) is block["final"]


def test_a_node_killed_mid_round_restarts_catches_up_and_agrees(devnet: Devnet) -> None:
    k = NODES - 1
    until(lambda: tip(devnet, k) >= 3, "node 3 to commit a few blocks", devnet)
    # Keep some transactions flowing so the killed node has real blocks to catch up on:
    # 5 transfers of each account the others run, from the nonce each expects next.
    later, _ = next_transfers(devnet, 5, range(k))
    before = tip(devnet, k)
    assert devnet.kill(k, signal.SIGKILL) == -signal.SIGKILL
    # The others go on without it (3 of 4 nodes hold 75 % of the stake > t_h).
    base = [tip(devnet, j) for j in range(k)]
    for j, mine in later.items():
        submit(devnet, j, mine)
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


def test_the_clean_stop_check_fails_on_a_node_that_did_not_exit_0(tmp_path: Path) -> None:
    """The teardown check of every devnet fixture can fail: a node that died on its own
    (here SIGKILLed behind the devnet's back) is reported with its status."""
    net = Devnet(tmp_path, nodes=1, accounts=4, seed=SEED)
    net.create()
    with net:
        net.start()
        net.wait_ready(DEADLINE)
        proc = net.procs[0]
        assert proc is not None
        proc.kill()
        proc.wait(DEADLINE)
        with pytest.raises(AssertionError, match=r"exit status on SIGTERM.*\{0: -9\}"):
            stop_cleanly(net)


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

    from echorand.tools.devnet import LoadStats, Submitted, _submit

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


def test_a_vrf_seed_devnet_commits_proposed_blocks_and_agrees(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A genesis with seed_mode "vrf" (format 3): the leaders' blocks carry 80-byte VRF
    proofs (block kind 0x02), every node checks them and takes Q[r] from their outputs, and
    the nodes commit the same chain with no fork."""
    params = replace(DEVNET_PARAMS, seed_mode="vrf")
    net = Devnet(tmp_path_factory.mktemp("vrf"), nodes=3, accounts=12, seed="vrf", params=params)
    net.create()
    with net:
        net.start()
        net.wait_ready(DEADLINE)

        def proposed() -> list[int]:
            return [r for r in range(1, tip(net, 0) + 1) if not net.client(0).block(r)["empty"]]

        until(lambda: len(proposed()) >= 3, "three proposed blocks at node 0", net)
        target = tip(net, 0)
        until(lambda: all(tip(net, k) >= target for k in range(3)), "every node there", net)
        chains = [net.hashes(k, 1, target) for k in range(3)]
        assert all(c == chains[0] for c in chains), "the nodes hold different chains"
        for r in proposed():
            raw = net.client(0).block_raw(r)
            block = Block.from_bytes(raw)
            assert raw[0] == 2 and len(block.seed_sig or b"") == 80
        for k in range(3):
            doc = net.status(k)
            assert doc is not None and doc["forks"] == 0 and doc["halted"] is None
        stop_cleanly(net)
