"""Admission control (echorand.admission): the block budget, the backlog bound, the API's
429 with its Retry-After, the client that honours it, and the devnet driver that waits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from echorand.admission import LAMBDA_TXS, Backpressure, Busy
from echorand.api import Api
from echorand.client import NodeBusy, NodeClient
from echorand.client.http import request_with_headers, retry_after
from echorand.config import ConfigError, NodeConfig, load_config
from echorand.devnet import DevnetOptions, LoadStats, _load, sign_transfers
from echorand.genesis import create_devnet, node_keys_path
from echorand.messages import Transaction
from echorand.node import Node

# --- the bounds --------------------------------------------------------------------------


def test_a_block_is_capped_by_its_maximum_lambda_and_the_time_budget() -> None:
    bp = Backpressure(block_max_txs=5000, budget_ms=100, round_ms=500)
    assert bp.block_txs() == 5000  # nothing measured yet: the configured maximum
    assert Backpressure(block_max_txs=50_000, budget_ms=100, round_ms=500).block_txs() == (
        LAMBDA_TXS
    )
    bp.observe_block(1000, 0.1)  # 0.1 ms a transaction: 1000 fit in 100 ms
    assert bp.block_txs() == 1000
    bp.observe_block(0, 5.0)  # an empty block says nothing about a transaction's cost
    assert bp.block_txs() == 1000
    bp.observe_block(100, 1.0)  # 10 ms a transaction: the average moves towards it
    assert 10 < bp.block_txs() < 1000
    for _ in range(200):
        bp.observe_block(10, 10.0)  # 1 s a transaction: still one a block
    assert bp.block_txs() == 1
    assert Backpressure(block_max_txs=0, budget_ms=1, round_ms=1).block_txs() == 0


def test_the_backlog_bound_is_rounds_of_blocks_and_the_hint_the_rounds_it_takes() -> None:
    bp = Backpressure(block_max_txs=100, budget_ms=100, round_ms=400, backlog_rounds=3)
    assert bp.limit() == 300
    assert bp.busy(0) is None and bp.busy(300) is None
    busy = bp.busy(301)
    assert busy == Busy(queued=301, limit=300, retry_after_ms=400)
    assert bp.busy(500) == Busy(500, 300, 800)  # 200 more than the bound: two rounds
    assert busy is not None and busy.retry_after_s == 1
    assert "node busy" in busy.reason and busy.to_json()["retry_after_ms"] == 400
    for _ in range(100):
        bp.observe_round(0.1)  # rounds of 100 ms measured
    assert bp.busy(301) == Busy(301, 300, 100)
    assert Busy(1, 0, 2001).retry_after_s == 3
    with pytest.raises(ValueError):
        Backpressure(block_max_txs=1, budget_ms=0, round_ms=1)


def test_the_bounds_come_from_the_config_file(tmp_path: Path) -> None:
    base = '[node]\ndata_dir = "d"\ngenesis = "g"\nvalidator = false\n'
    (tmp_path / "a.toml").write_text(
        base + "[mempool]\nbacklog_rounds = 1.5\n[blocks]\nbudget_ms = 80\n"
    )
    config = load_config(tmp_path / "a.toml")
    assert config.mempool_backlog_rounds == 1.5 and config.block_budget_ms == 80
    (tmp_path / "b.toml").write_text(base + "[mempool]\nbacklog_rounds = 0\n")
    with pytest.raises(ConfigError, match="backlog_rounds"):
        load_config(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text(base)
    defaults = load_config(tmp_path / "c.toml")
    assert defaults.mempool_backlog_rounds == 2 and defaults.block_budget_ms == 0


def test_retry_after_prefers_the_bodys_milliseconds() -> None:
    assert retry_after({"Retry-After": "3"}, {"retry_after_ms": 250}) == 0.25
    assert retry_after({"Retry-After": "3"}, {"error": "x"}) == 3.0
    assert retry_after({}, None) == 1.0


# --- a real node's API, without consensus: nothing commits, so the pool only grows ---------

SEED = "busy"


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Node, str]]:
    """A node whose block carries 2 transactions and whose pool may hold one block
    (limit 2), its API served on a thread; (node, API URL)."""
    genesis_dir = tmp_path / "genesis"
    create_devnet(genesis_dir, accounts=64, nodes=1, seed=SEED)
    config = NodeConfig(
        data_dir=tmp_path / "data",
        genesis=genesis_dir,
        keys=node_keys_path(genesis_dir, 0),
        block_max_txs=2,
        mempool_backlog_rounds=1,
    )
    node = Node(config)
    loop = asyncio.new_event_loop()
    api = Api(node)
    port = loop.run_until_complete(api.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield node, f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(api.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        node.ledger.close()


def transfers(node: Node, count: int) -> list[bytes]:
    return sign_transfers(SEED, 64, count, node.genesis.hash)


def test_post_tx_answers_429_with_retry_after_when_the_pool_is_over_its_bound(
    served: tuple[Node, str],
) -> None:
    node, url = served
    txs = transfers(node, 4)
    status, data, _ = request_with_headers(url + "/tx", b"".join(txs[:3]))
    assert status == 200 and len(node.mempool) == 3  # 0 queued: under the bound, all read
    status, data, headers = request_with_headers(url + "/tx", txs[3])
    assert status == 429
    doc = orjson.loads(data)
    # One transaction over the bound of 2: one round, λ + Λ until a round is measured.
    round_ms = node.params.lam_ms + node.params.big_lam_ms
    assert doc == {
        "error": doc["error"],
        "retry_after_ms": round_ms,
        "queued": 3,
        "limit": 2,
    }
    assert doc["error"].startswith("node busy: 3 transactions queued")
    assert headers["Retry-After"] == str(-(-round_ms // 1000))
    assert len(node.mempool) == 3 and node.counters["api_busy"] == 1
    assert "echorand_api_busy_total 1" in NodeClient(url).metrics_text()
    status_doc = NodeClient(url).status()
    assert status_doc["mempool"]["limit"] == 2 and status_doc["mempool"]["block_txs"] == 2


def test_the_client_waits_as_asked_then_says_busy(served: tuple[Node, str]) -> None:
    node, url = served
    txs = transfers(node, 4)
    waits: list[float] = []
    client = NodeClient(url, busy_retries=2, sleep=waits.append)
    result = client.submit([Transaction.from_bytes(tx) for tx in txs[:3]])
    assert result["accepted"] == 3 and waits == []
    with pytest.raises(NodeBusy) as caught:
        client.submit([Transaction.from_bytes(txs[3])])
    round_s = (node.params.lam_ms + node.params.big_lam_ms) / 1000
    assert waits == [round_s, round_s] and client.busy_waits == 2
    assert caught.value.status == 429 and caught.value.retry_after == round_s
    assert "node busy" in caught.value.reason
    assert node.counters["api_busy"] == 3  # asked three times, read none
    assert txs[3] not in {tx.encode() for tx in node.mempool.select(10)}


def test_the_devnet_driver_waits_for_a_busy_node_instead_of_resubmitting(
    served: tuple[Node, str],
) -> None:
    node, url = served
    txs = transfers(node, 2000)
    stats = LoadStats()
    options = DevnetOptions(nodes=1, accounts=64, tps=2000, tick=0.02)

    async def drive() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, stop.set)
        await _load([url + "/tx"], txs, options, stats, stop)

    asyncio.run(drive())
    assert stats.accepted == len(node.mempool) > 2  # what the first request brought
    assert stats.busy >= 1 and stats.deferred >= 1 and stats.busy_wait_s > 0
    # The first busy answer asks for the rounds that commit the backlog (seconds, here
    # where nothing commits): the driver waits for them (or the end of the load), where a
    # driver resubmitting every tick would have been refused ~50 times in that second.
    assert stats.busy == node.counters["api_busy"] <= 2
    assert stats.submitted == stats.accepted  # no request after the first was read
