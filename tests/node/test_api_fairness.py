"""Fair shares of the admission pace (echorand.node.backpressure.Shares) on a real node
process: a client that floods `POST /tx` from one address, ignoring every 429, does not
hold an honest client on another address at 429.

The pace is made small (blocks of 10 transactions: about 18 a second, a bucket of 100),
so that one thread can drain it: the flooder posts 5 well-formed transactions with bad
signatures at a time, as fast as the node answers (the pace is taken before signatures
are checked, so junk drains it as well as valid transfers would). The honest client
posts 2 valid transfers every 0.4 s (5 a second, under its half of the pace).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from _helpers import running

from echorand.tools.devnet import Devnet, sign_transfers
from echorand.wire.transactions import Transaction

SEED = "test-api-fairness"
ACCOUNTS = 40
FLOOD_FROM = "127.0.0.2"
HONEST_FROM = "127.0.0.3"
HONEST_REQUESTS = 25
HONEST_TXS = 2
HONEST_EVERY = 0.4


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(
        tmp_path_factory.mktemp("fairness"), nodes=1, accounts=ACCOUNTS, seed=SEED, block_txs=10
    )
    with running(net):
        yield net


def connect(port: int, source: str) -> http.client.HTTPConnection:
    """A kept-alive connection to the node's API from the address `source` (a connection a
    request would run the source address out of ports)."""
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))


def post(conn: http.client.HTTPConnection, body: bytes) -> int:
    """POST /tx on `conn`; the status."""
    conn.request("POST", "/tx", body, {"Content-Type": "application/octet-stream"})
    response = conn.getresponse()
    response.read()
    return response.status


def junk(count: int, start: int) -> bytes:
    """Well-formed transfers with bad signatures (refused after the pace let them in)."""
    return b"".join(
        Transaction(0, bytes(32), bytes(32), 1, 1, start + n, bytes(64)).encode()
        for n in range(count)
    )


def test_a_flooding_client_does_not_hold_an_honest_one_at_429(node: Devnet) -> None:
    port = node.api_ports[0]
    assert node.url(0, "/").startswith("http://127.0.0.1:")
    stop = threading.Event()
    flood: Counter[int] = Counter()

    def flooder() -> None:
        conn = connect(port, FLOOD_FROM)
        n = 0
        while not stop.is_set():
            flood[post(conn, junk(5, n))] += 1
            n += 5
        conn.close()

    thread = threading.Thread(target=flooder, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # the flooder alone drains the pace
        txs = sign_transfers(SEED, ACCOUNTS, HONEST_REQUESTS * HONEST_TXS, node.genesis_hash)
        honest: list[int] = []
        conn = connect(port, HONEST_FROM)
        for i in range(HONEST_REQUESTS):
            body = b"".join(txs[i * HONEST_TXS : (i + 1) * HONEST_TXS])
            honest.append(post(conn, body))
            time.sleep(HONEST_EVERY)
        conn.close()
    finally:
        stop.set()
        thread.join(15)
    # The flooder was held back (it met the pace: 429s), and got the rest of the pace in.
    assert flood[429] >= 10 and flood[400] >= 10, flood
    # The honest client's first request may meet a drained bucket (it is not yet known
    # as active); from then on its share is left to it.
    assert honest[1:].count(200) >= len(honest) - 4, honest  # 14 to 18 of 24 without shares
    status = node.status(0)
    assert status is not None and status["tip"]["round"] >= 1
