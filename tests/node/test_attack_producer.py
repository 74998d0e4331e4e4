"""A producer's block with forged or overspending transactions, against the real nodes of a
4-process devnet.

Node 3 is replaced by a Byzantine node: the real `Node` with node 3's accounts, run in this
process, whose payload is a transaction with a forged signature (even rounds) or one that
spends more than its sender has (odd rounds), both from real accounts at their next nonce.
Its blocks are well signed and carry a valid CERT_{r-1}, so only the payload checks of the
honest nodes (`AccountState.prepare`, then the signatures) stand in the way. They refuse
every such block: none of the transactions is ever committed, the honest nodes keep
committing (against a quiet window of the same test) and agree.

The producer is not banned: an honest node relays a block once its signatures verify,
before its payload is checked, so the peer that hands it over may be honest; the producer's
stake is what the protocol holds against it (docs/protocol.md §12).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest
from _helpers import DEADLINE, stop_cleanly, tip, until
from attack import FRACTION, RSS_CEILING, rss, status, window

from echorand.net.network import run
from echorand.node.config import load_config
from echorand.node.node import Node
from echorand.tools.devnet import Devnet, http_json
from echorand.tools.genesis import devnet_master
from echorand.wire.crypto import Keypair
from echorand.wire.messages import Transaction
from echorand.wire.transactions import devnet_seeds, transfer

NODES = 4
ACCOUNTS = 40
SEED = "test-attack-producer"
B = NODES - 1
"""The Byzantine node."""
HONEST = range(B)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(
        tmp_path_factory.mktemp("attack-producer"), nodes=NODES, accounts=ACCOUNTS, seed=SEED
    )
    net.create()
    with net:
        net.start()
        net.wait_ready(DEADLINE)
        until(lambda: tip(net, 0) >= 3, "a few blocks", net)
        yield net
        stop_cleanly(net)


def _account(devnet: Devnet, k: int) -> dict:
    code, doc = http_json(devnet.url(0, f"/account/{k}"))
    assert code == 200, doc
    return doc


def _bad_transactions(devnet: Devnet) -> tuple[Transaction, Transaction]:
    """(a transfer with a forged signature, a well-signed transfer of more than the balance),
    from accounts 0 and 1 at their next nonce."""
    seeds = devnet_seeds(devnet_master(SEED), ACCOUNTS)
    keys = [Keypair.from_seed(seeds[32 * i : 32 * (i + 1)]) for i in range(2)]
    chain = devnet.genesis_hash
    a, b = _account(devnet, 0), _account(devnet, 1)
    real = transfer(keys[0], keys[1].public_key, 5, fee=1, nonce=a["nonce"], chain=chain)
    sig = bytes([real.signature[0] ^ 1]) + real.signature[1:]
    forged = Transaction(
        real.kind, real.sender, real.recipient, real.amount, real.fee, real.nonce, sig
    )
    assert b["balance"] < 1 << 61  # (rewards raise it: spend far more than it can reach)
    over = transfer(keys[1], keys[0].public_key, 1 << 62, fee=1, nonce=b["nonce"], chain=chain)
    return forged, over


def _log(devnet: Devnet, k: int) -> str:
    return devnet.log_path(k).read_text(errors="replace")


def test_a_producers_block_with_forged_or_overspending_transactions_is_refused(
    devnet: Devnet,
) -> None:
    quiet = window(devnet, 0)
    forged, over = _bad_transactions(devnet)
    assert devnet.kill(B, signal.SIGTERM) == 0
    node = Node(load_config(devnet.config_path(B)))
    node._payload = lambda round: [forged] if round % 2 == 0 else [over]  # type: ignore[method-assign]
    failed: list[BaseException] = []

    def byzantine() -> None:
        try:
            run(node.run())
        except BaseException as e:
            failed.append(e)

    thread = threading.Thread(target=byzantine, daemon=True)
    thread.start()
    try:
        hot = window(devnet, 0)

        def both_refused() -> bool:
            assert not failed, failed
            text = "".join(_log(devnet, k) for k in HONEST)
            return "refused: 1 bad signature(s)" in text and "insufficient balance" in text

        until(both_refused, "the honest nodes to refuse both kinds of block", devnet)
        assert not failed, failed
    finally:
        loop = node._loop
        if loop is not None:
            loop.call_soon_threadsafe(node.stop)
        thread.join(60)
    assert not thread.is_alive() and not failed, failed
    assert hot.blocks >= max(2, FRACTION * quiet.blocks), (hot.blocks, quiet.blocks)
    assert all(rss(devnet, k) < RSS_CEILING for k in HONEST)
    # None of the bad transactions was ever committed, and the honest nodes agree.
    bad = {forged.id.hex(), over.id.hex()}
    last = min(tip(devnet, k) for k in HONEST)
    for r in range(1, last + 1):
        code, doc = http_json(devnet.url(0, f"/block/{r}"))
        assert code == 200 and not bad & set(doc["tx_ids"]), r
    chains = [devnet.hashes(k, 1, last) for k in HONEST]
    assert chains[0] == chains[1] == chains[2]
    devnet.start_node(B)  # back to an honest node 3 for the teardown
    devnet.wait_ready(DEADLINE, nodes=iter([B]))
    assert status(devnet, B)["sync"]["joined"]
