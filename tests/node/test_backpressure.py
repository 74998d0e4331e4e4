"""Admission control (echorand.node.backpressure): the block budget, the backlog bound, the API's
429 with its Retry-After, the client that honours it, and the devnet driver that waits."""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from echorand.node.api import Api
from echorand.node.backpressure import (
    DECREASE,
    INCREASE,
    LAMBDA_TXS,
    MAX_WAIT_ROUNDS,
    MEASURED_BLOCK,
    MIN_BACKLOG,
    MIN_BLOCK,
    MIN_WAIT_MS,
    NODE_BUSY,
    Backpressure,
    Busy,
)
from echorand.node.config import ConfigError, NodeConfig, load_config
from echorand.node.node import Node
from echorand.tools.client import NodeBusy, NodeClient
from echorand.tools.client.commands import EXIT_BUSY, _guarded
from echorand.tools.client.http import request_with_headers, retry_after
from echorand.tools.devnet import DevnetOptions, LoadStats, _load, sign_transfers
from echorand.tools.genesis import create_devnet, node_keys_path
from echorand.wire.messages import Transaction

# --- the bounds --------------------------------------------------------------------------


def test_a_block_is_capped_by_its_maximum_lambda_and_the_time_budget() -> None:
    bp = Backpressure(block_max_txs=5000, budget_ms=100, round_ms=500)
    assert bp.block_txs() == 5000  # nothing measured yet: the configured maximum
    assert Backpressure(block_max_txs=50_000, budget_ms=100, round_ms=500).block_txs() == (
        LAMBDA_TXS
    )
    bp.observe_block(1000, 0.1)  # 0.1 ms a transaction: 1000 fit in 100 ms
    assert bp.block_txs() == 1000
    bp.observe_block(0, 5.0)  # an empty block says nothing about a transaction's cost,
    bp.observe_block(MEASURED_BLOCK - 1, 5.0)  # nor a small one (its fsync is not one's)
    assert bp.block_txs() == 1000
    bp.observe_block(1000, 10.0)  # 10 ms a transaction: the average moves towards it
    assert 10 < bp.block_txs() < 1000
    for _ in range(200):
        bp.observe_block(1000, 1000.0)  # 1 s a transaction: still one a block
    assert bp.block_txs() == 1
    assert Backpressure(block_max_txs=0, budget_ms=1, round_ms=1).block_txs() == 0


def test_the_backlog_bound_is_seconds_of_the_pace() -> None:
    bp = Backpressure(block_max_txs=1000, budget_ms=100, round_ms=500, backlog_seconds=0.5)
    # Nothing measured: a block a round, 2 000/s; half a second of it.
    assert bp.rate == 2000 and bp.limit() == 1000
    assert bp.busy(0) is None and bp.busy(999) is None and bp.room(400) == 600
    busy = bp.busy(1000)
    assert busy == Busy(queued=1000, limit=1000, retry_after_ms=500)  # one round at least
    assert bp.busy(3000) == Busy(3000, 1000, 1001)  # 2 001 more at 2 000/s
    assert bp.busy(10**6).retry_after_ms == MAX_WAIT_ROUNDS * 500  # then come and look
    assert busy is not None and busy.retry_after_s == 1 and bp.room(5000) == 0
    assert "node busy" in busy.reason and busy.to_json()["retry_after_ms"] == 500
    bp.observe_commit(100, 0.3, queued=0)  # what rounds commit does not set the pace
    for _ in range(100):
        bp.observe_commit(300, 0.3, queued=1200)
    assert bp.rate == 2000 and bp.round_ms.value == pytest.approx(300)
    bp.observe_commit(10, 0.0, queued=800)  # no length: nothing learnt
    assert bp.round_ms.value == pytest.approx(300)
    assert bp.busy(999, slack=2) is None and bp.busy(2000, slack=2) is not None
    assert Busy(1, 0, 2001).retry_after_s == 3
    with pytest.raises(ValueError):
        Backpressure(block_max_txs=1, budget_ms=0, round_ms=1)


def test_the_pace_follows_the_delay_from_admission_to_commit() -> None:
    now = [0.0]
    bp = Backpressure(
        block_max_txs=1000, budget_ms=100, round_ms=500, backlog_seconds=0.5, clock=lambda: now[0]
    )
    assert bp.rate == 2000 and bp.delay is None
    bp.observe_delay(0.7)  # 0.2 s queued (less the round, 500 ms): under the target, but
    assert bp.rate == 2000 and bp.delay == 0.7  # the pace held nobody back: kept
    assert bp.room(0, wanted=5000) == 1000  # a round's worth at once: the pace held it back
    bp.observe_delay(0.7)
    assert bp.rate == 2000 * INCREASE
    bp.observe_delay(0.7)  # once per hold
    assert bp.rate == 2000 * INCREASE
    bp.observe_delay(1.1)  # 0.6 s queued, over the target: cut
    assert bp.rate == pytest.approx(2000 * INCREASE * DECREASE)
    bp.observe_delay(1.2)  # what was admitted before the cut still shows: not again yet
    assert bp.rate == pytest.approx(2000 * INCREASE * DECREASE)
    now[0] = 0.5
    bp.observe_delay(1.2)
    assert bp.rate == pytest.approx(2000 * INCREASE * DECREASE**2)
    bp.observe_commit(0, 1.0, queued=0)  # slower rounds: a longer wait is not queueing
    bp.room(0, wanted=10**6)
    bp.observe_delay(1.0)
    assert bp.rate == pytest.approx(2000 * INCREASE**2 * DECREASE**2)
    for k in range(100):  # a stalled node: down to its floor, MIN_BACKLOG over the backlog
        now[0] = 1 + k
        bp.observe_delay(5.0)
    assert bp.rate == pytest.approx(MIN_BACKLOG / 0.5) and bp.limit() == MIN_BACKLOG
    for _ in range(1000):  # a held-back API with commits in time: up to four full blocks
        assert bp.busy(0, wanted=10**6) is not None or bp.room(0, wanted=10**6) >= 0
        bp.observe_delay(0.1)
    assert bp.rate == pytest.approx(4 * 1000 * 1000 / bp.round_ms.value)  # 4 blocks a round


def test_under_any_offered_load_the_pace_keeps_the_node_near_its_capacity() -> None:
    """A fluid model of a saturated node: it commits at most `capacity` a second (twice its
    first estimate, a full block over λ + Λ), a block a round, in arrival order; a client
    offers `factor` times that, placing what the node has not taken yet in a request that
    it sends again when the node's hint says (or next round). Committed throughput stays
    at 90 % of the capacity or more at every load, and the median wait from admission to
    commit under a second."""
    capacity, round_s = 20_000.0, 0.13
    now = [0.0]
    for factor in (1.0, 1.5, 2.0, 4.0, 10.0):
        now[0] = 0.0
        bp = Backpressure(block_max_txs=5000, budget_ms=250, round_ms=550, clock=lambda: now[0])
        pool: list[float] = []  # admission times, oldest first
        committed, waits, placed = 0, [], 0
        rounds = 400
        for r in range(rounds):
            now[0], end = r * round_s, (r + 1) * round_s
            while now[0] < end:  # the client asks again when told to, or next round
                offered = max(0, int(factor * capacity * now[0]) - placed)
                busy = bp.busy(len(pool), wanted=offered)
                if busy is None:
                    take = bp.room(len(pool), offered)
                    bp.admitted(take)
                    pool += [now[0]] * take
                    placed += take
                now[0] += busy.retry_after_ms / 1000 if busy is not None else round_s
            now[0] = end
            n = min(len(pool), int(capacity * round_s), bp.block_txs())
            block, pool = pool[:n], pool[n:]
            bp.observe_commit(n, round_s, len(pool) + n, empty=n == 0)
            if block:
                wait = now[0] - block[len(block) // 2]
                bp.observe_delay(wait)
                if r >= rounds // 2:
                    committed += n
                    waits.append(wait)
        throughput = committed / (rounds // 2 * round_s)
        assert throughput >= 0.9 * capacity, (factor, throughput)
        assert sorted(waits)[len(waits) // 2] < 1.0, factor


def test_the_api_admits_at_the_pace_and_says_when_a_request_fits() -> None:
    now = [0.0]
    bp = Backpressure(block_max_txs=1000, budget_ms=100, round_ms=500, clock=lambda: now[0])
    # 2 000/s, a bound of 1 000, a burst of a round's worth (1 000), full at first.
    assert bp.room(0) == 1000
    bp.admitted(1000)
    assert bp.room(0) == 0 and bp.busy(0) == Busy(0, 1000, MIN_WAIT_MS)
    assert bp.busy(0, slack=2) is None  # gossip is not paced
    assert bp.busy(0, wanted=400) == Busy(0, 1000, 200)  # 400 at 2 000/s
    assert bp.busy(0, wanted=10**6) == Busy(0, 1000, 500)  # a request past a round's worth
    now[0] = 0.1  # waits for a full bucket; refilled at the pace
    assert bp.room(0) == 200 and bp.busy(0) is None and bp.busy(0, wanted=400) is not None
    bp.admitted(150)
    assert bp.room(150) == 50
    now[0] = 10.0  # a long pause fills one burst, no more
    assert bp.room(0) == 1000 and bp.room(900) == 100
    bp.admitted(100)
    assert bp.room(0) == 900
    assert bp.busy(950, wanted=900) is None  # the bound leaves room for 50: those go in


def test_a_client_over_its_share_leaves_the_others_theirs() -> None:
    """A flooder drains the pace; a light client beside it still finds room, because the
    flooder, over its share, may not take the last half of a round's worth; alone, or once
    the other is gone, the flooder gets the whole pace again (work-conserving). The light
    client's first request finds the bucket drained: it counts as active from then on."""
    now = [0.0]
    bp = Backpressure(block_max_txs=1000, budget_ms=100, round_ms=500, clock=lambda: now[0])
    # 2 000/s, a burst of a round's worth (1 000).
    assert bp.room(0, 1000, "flood") == 1000  # alone: the whole pace
    bp.admitted(1000, "flood")
    light_got = 0
    for step in range(1, 101):  # 10 s: the flooder asks for 1 000 ten times each 0.1 s
        now[0] = step * 0.1
        for _ in range(10):
            bp.admitted(min(1000, bp.room(0, 1000, "flood")), "flood")
        if step % 5 == 0:  # the light client, right after: 20 every 0.5 s, 40/s
            busy = bp.busy(0, wanted=20, client="light")
            assert (busy is not None) == (step == 5), now[0]
            got = min(20, bp.room(0, 20, "light"))
            bp.admitted(got, "light")
            light_got += got
    assert light_got == 19 * 20
    assert bp.shares.active() == 2
    # The flooder over its share is told to wait for the room above the reserve.
    assert bp.busy(0, wanted=1000, client="flood") is not None
    now[0] += 3.0  # the light client is gone: the flooder takes a whole round's worth again
    assert bp.shares.active() == 0 and bp.room(0, 1000, "flood") == 1000


def test_without_shares_a_flooder_starves_a_light_client() -> None:
    """The same load with one address for both (behind a proxy they are one client): the
    light client's requests find the bucket drained (what the shares prevent above)."""
    now = [0.0]
    bp = Backpressure(block_max_txs=1000, budget_ms=100, round_ms=500, clock=lambda: now[0])
    refused = 0
    for step in range(1, 101):
        now[0] = step * 0.1
        for _ in range(10):
            bp.admitted(min(1000, bp.room(0, 1000, "proxy")), "proxy")
        if step % 5 == 0:
            refused += bp.busy(0, wanted=20, client="proxy") is not None
    assert refused == 20


def test_rounds_that_end_empty_under_load_halve_the_block_and_full_ones_grow_it() -> None:
    bp = Backpressure(block_max_txs=1600, budget_ms=1000, round_ms=500)
    bp.observe_commit(0, 0.5, queued=0, empty=True)  # no load: says nothing of the size
    assert bp.block_txs() == 1600
    bp.observe_commit(0, 0.5, queued=10, empty=False)  # a block with nothing in it
    assert bp.block_txs() == 1600
    bp.observe_commit(0, 0.7, queued=3000, empty=True)
    assert bp.block_txs() == 800
    for _ in range(10):
        bp.observe_commit(0, 0.7, queued=3000, empty=True)
    assert bp.block_txs() == MIN_BLOCK
    bp.observe_commit(100, 0.2, queued=3000)
    assert bp.block_txs() == MIN_BLOCK + 100  # + 1/16 of the maximum a committed block
    for _ in range(20):
        bp.observe_commit(100, 0.2, queued=3000)
    assert bp.block_txs() == 1600


def test_the_bounds_come_from_the_config_file(tmp_path: Path) -> None:
    base = '[node]\ndata_dir = "d"\ngenesis = "g"\nvalidator = false\n'
    (tmp_path / "a.toml").write_text(
        base + "[mempool]\nbacklog_seconds = 1.5\n[blocks]\nbudget_ms = 80\n"
    )
    config = load_config(tmp_path / "a.toml")
    assert config.mempool_backlog_seconds == 1.5 and config.block_budget_ms == 80
    (tmp_path / "b.toml").write_text(base + "[mempool]\nbacklog_seconds = 0\n")
    with pytest.raises(ConfigError, match="backlog_seconds"):
        load_config(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text(base)
    defaults = load_config(tmp_path / "c.toml")
    assert defaults.mempool_backlog_seconds == 0.5 and defaults.block_budget_ms == 0


def test_retry_after_prefers_the_bodys_milliseconds() -> None:
    assert retry_after({"Retry-After": "3"}, {"retry_after_ms": 250}) == 0.25
    assert retry_after({"Retry-After": "3"}, {"error": "x"}) == 3.0
    assert retry_after({}, None) == 1.0


# --- a real node's API, without consensus: nothing commits, so the pool only grows ---------

SEED = "busy"
ACCOUNTS = 400


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Node, str]]:
    """A node whose block carries 2 transactions, so that its bound is the floor
    (MIN_BACKLOG: 2 a round of λ + Λ is far less), its API served on a thread;
    (node, API URL)."""
    genesis_dir = tmp_path / "genesis"
    create_devnet(genesis_dir, accounts=ACCOUNTS, nodes=1, seed=SEED)
    config = NodeConfig(
        data_dir=tmp_path / "data",
        genesis=genesis_dir,
        keys=node_keys_path(genesis_dir, 0),
        block_max_txs=2,
    )
    node = Node(config)
    assert node.backpressure.limit() == MIN_BACKLOG
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
    return sign_transfers(SEED, ACCOUNTS, count, node.genesis.hash)


def test_post_tx_admits_up_to_the_bound_then_answers_429_with_retry_after(
    served: tuple[Node, str],
) -> None:
    node, url = served
    txs = transfers(node, MIN_BACKLOG + 21)
    status, data, _ = request_with_headers(url + "/tx", b"".join(txs[: MIN_BACKLOG + 20]))
    doc = orjson.loads(data)
    # Room for the bound's 100: the batch's head is admitted, the rest refused unread.
    assert status == 400 and doc["accepted"] == MIN_BACKLOG and doc["refused"] == 20
    assert {r.get("error") for r in doc["results"][MIN_BACKLOG:]} == {NODE_BUSY}
    assert len(node.mempool) == MIN_BACKLOG
    status, data, headers = request_with_headers(url + "/tx", txs[-1])
    assert status == 429
    doc = orjson.loads(data)
    # One past the bound at a block (2) a round (λ + Λ): 600 ms, so one round, λ + Λ.
    round_ms = node.params.lam_ms + node.params.big_lam_ms
    assert doc == {
        "error": doc["error"],
        "retry_after_ms": round_ms,
        "queued": MIN_BACKLOG,
        "limit": MIN_BACKLOG,
    }
    assert doc["error"].startswith(f"node busy: {MIN_BACKLOG} transactions queued")
    assert headers["Retry-After"] == str(-(-round_ms // 1000))
    assert len(node.mempool) == MIN_BACKLOG and node.counters["api_busy"] == 1
    metrics = NodeClient(url).metrics_text()
    assert "echorand_api_busy_total 1" in metrics
    assert f'reason="{NODE_BUSY}"}} 20' in metrics
    pool = NodeClient(url).status()["mempool"]
    assert pool["limit"] == MIN_BACKLOG and pool["block_txs"] == 2


def test_the_client_waits_as_asked_then_says_busy(served: tuple[Node, str]) -> None:
    node, url = served
    txs = [Transaction.from_bytes(tx) for tx in transfers(node, MIN_BACKLOG + 1)]
    waits: list[float] = []
    client = NodeClient(url, busy_retries=2, sleep=waits.append)
    assert client.submit(txs[:MIN_BACKLOG])["accepted"] == MIN_BACKLOG and waits == []
    with pytest.raises(NodeBusy) as caught:
        client.submit(txs[MIN_BACKLOG:])
    round_s = (node.params.lam_ms + node.params.big_lam_ms) / 1000
    assert waits == [round_s, round_s] and client.busy_waits == 2
    assert caught.value.status == 429 and caught.value.retry_after == round_s
    assert "node busy" in caught.value.reason
    assert node.counters["api_busy"] == 3  # asked three times, read none
    assert txs[-1].id not in node.mempool


def test_the_devnet_driver_waits_for_a_busy_node_instead_of_resubmitting(
    served: tuple[Node, str],
) -> None:
    node, url = served
    txs = transfers(node, 2000)
    stats = LoadStats()
    options = DevnetOptions(nodes=1, accounts=ACCOUNTS, tps=2000, tick=0.02)

    async def drive() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(1.5, stop.set)
        await _load([url + "/tx"], txs, options, stats, stop)

    asyncio.run(drive())
    assert stats.accepted == len(node.mempool) == MIN_BACKLOG
    assert stats.busy >= 1 and stats.deferred >= 1 and stats.busy_wait_s > 0
    # Nothing commits here, so each busy answer asks for a round (λ + Λ = 1.2 s): in
    # 1.5 s the driver asks at most twice after the bound filled, where a driver
    # resubmitting every tick would have been refused ~70 times.
    assert stats.busy == node.counters["api_busy"] <= 3
    # Accepted ones carry the accepting request's time and the (earlier or equal) offer's.
    assert len(stats.submit_ms) == MIN_BACKLOG == len(stats.offered_by_id)
    assert all(stats.offered_by_id[i] <= at for i, at in stats.submit_ms.items())


def test_admission_control_off_bounds_nothing(tmp_path: Path) -> None:
    bp = Backpressure(block_max_txs=9000, budget_ms=1, round_ms=500, enabled=False)
    for _ in range(20):
        bp.observe_commit(0, 0.7, queued=10**5, empty=True)
        bp.observe_block(5000, 50.0)
    assert bp.block_txs() == 9000 and bp.busy(10**7) is None and bp.room(10**7) > 10**9
    (tmp_path / "off.toml").write_text(
        '[node]\ndata_dir = "d"\ngenesis = "g"\nvalidator = false\n[mempool]\nadmission = false\n'
    )
    assert load_config(tmp_path / "off.toml").admission is False


def test_a_client_command_says_busy_in_one_line_and_exits_75(
    served: tuple[Node, str], capsys: pytest.CaptureFixture[str]
) -> None:
    node, url = served
    txs = [Transaction.from_bytes(tx) for tx in transfers(node, MIN_BACKLOG + 1)]
    NodeClient(url).submit(txs[:MIN_BACKLOG])

    def send(_args: argparse.Namespace) -> int:
        NodeClient(url, busy_retries=1, sleep=lambda _s: None).submit(txs[MIN_BACKLOG:])
        return 0

    assert _guarded("send", send)(argparse.Namespace()) == EXIT_BUSY == 75
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("echorand send: the node is busy (429") and "try again in" in line
    assert node.counters["api_busy"] == 2  # asked, waited as told, asked again
