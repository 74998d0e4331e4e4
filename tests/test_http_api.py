"""The node's HTTP API (echorand.api) on a one-node devnet: a real process on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest

from echorand.crypto import Keypair
from echorand.devnet import Devnet, http_json, sign_transfers
from echorand.genesis import devnet_master
from echorand.messages import Block
from echorand.transactions import Transaction, devnet_seeds, transfer

SEED = "test-http-api"
ACCOUNTS = 8
DEADLINE = 120.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("api"), nodes=1, accounts=ACCOUNTS, seed=SEED)
    net.create()
    with net:
        net.start()
        net.wait_ready(DEADLINE)
        yield net


def keypair(account: int) -> Keypair:
    seeds = devnet_seeds(devnet_master(SEED), ACCOUNTS)
    return Keypair.from_seed(seeds[32 * account : 32 * (account + 1)])


def post(net: Devnet, body: bytes, content_type: str = "application/octet-stream"):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(net.url(0, "/tx"), data=body, method="POST")
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


def get(net: Devnet, path: str):
    return http_json(net.url(0, path))


def nonce(net: Devnet, account: int) -> int:
    code, doc = get(net, f"/account/{account}")
    assert code == 200, doc
    return doc["nonce"] + doc["queued"]


def refused_for(net: Devnet, tx: Transaction) -> str:
    code, doc = post(net, tx.encode())
    assert code == 400, doc
    assert doc["accepted"] == 0 and doc["refused"] == 1
    (item,) = doc["results"]
    assert item["id"] == tx.id.hex() and item["accepted"] is False
    return item["error"]


def test_a_valid_transfer_is_accepted_and_committed(node: Devnet) -> None:
    a, b = keypair(0), keypair(1)
    tx = transfer(a, b.public_key, 5, fee=1, nonce=nonce(node, 0), chain=node.genesis_hash)
    code, doc = post(node, tx.encode())
    assert code == 200 and doc == {
        "accepted": 1,
        "refused": 0,
        "results": [{"id": tx.id.hex(), "accepted": True}],
    }
    deadline = time.monotonic() + DEADLINE
    while get(node, "/account/0")[1]["nonce"] <= tx.nonce:
        assert time.monotonic() < deadline, "the transfer was not committed"
        time.sleep(0.1)


def test_invalid_transactions_get_400_with_the_reason(node: Devnet) -> None:
    a, b = keypair(2), keypair(3)
    n = nonce(node, 2)
    chain = node.genesis_hash

    def pay(sender: Keypair, to: Keypair, amount: int, fee: int, nonce: int) -> Transaction:
        return transfer(sender, to.public_key, amount, fee=fee, nonce=nonce, chain=chain)

    good = pay(a, b, 1, 1, n)
    forged = Transaction(
        good.kind, good.sender, good.recipient, 2, good.fee, good.nonce, good.signature
    )
    assert refused_for(node, forged) == "bad signature"
    assert refused_for(node, pay(a, b, 1, 1, n + 5)) == "nonce too high"
    stranger = Keypair.from_seed(bytes(range(32)))
    assert refused_for(node, pay(stranger, b, 1, 0, 0)) == "unknown sender"
    assert refused_for(node, pay(a, b, 10**18, 1, n)) == "insufficient balance"
    assert refused_for(node, pay(a, a, 1, 1, n)) == "recipient is the sender"
    other_network = transfer(a, b.public_key, 1, fee=1, nonce=n, chain=bytes(32))
    assert refused_for(node, other_network) == "bad signature"  # PROTOCOL §2: chain-bound


def test_a_mixed_batch_is_400_and_queues_the_good_ones(node: Devnet) -> None:
    a, b = keypair(4), keypair(5)
    n = nonce(node, 4)
    good = transfer(a, b.public_key, 1, fee=1, nonce=n, chain=node.genesis_hash)
    bad = transfer(a, b.public_key, 1, fee=1, nonce=n + 3, chain=node.genesis_hash)
    code, doc = post(node, good.encode() + bad.encode())
    assert code == 400
    assert doc["accepted"] == 1 and doc["refused"] == 1
    assert doc["results"][0] == {"id": good.id.hex(), "accepted": True}
    assert doc["results"][1]["error"] == "nonce too high"


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"", "application/octet-stream", "body: no transactions"),
        (bytes(200), "application/octet-stream", "not a multiple of 153"),
        (b"\x07" + bytes(152), "application/octet-stream", "transaction 0:"),
        (b"{", "application/json", "not JSON"),
        (b'{"transactions": ["zz"]}', "application/json", "transactions[0]: expected 306 hex"),
        (b'{"tx": []}', "application/json", '{"transactions"'),
    ],
)
def test_malformed_bodies_get_400_naming_the_fault(
    node: Devnet, body: bytes, content_type: str, reason: str
) -> None:
    code, doc = post(node, body, content_type)
    assert code == 400, doc
    assert reason in doc["error"]


def test_json_transactions_in_hex(node: Devnet) -> None:
    a, b = keypair(6), keypair(7)
    tx = transfer(a, b.public_key, 3, fee=0, nonce=nonce(node, 6), chain=node.genesis_hash)
    body = orjson.dumps({"transactions": [tx.encode().hex()]})
    code, doc = post(node, body, "application/json")
    assert code == 200 and doc["results"][0]["id"] == tx.id.hex()
    code, doc = post(node, body, "application/json")
    assert code == 400
    assert doc["results"][0]["error"] in ("already in the mempool", "nonce too low")


def test_status(node: Devnet) -> None:
    code, doc = get(node, "/status")
    assert code == 200
    assert doc["sync"]["joined"] is True and doc["peers"] == 0
    assert doc["round"] == doc["tip"]["round"] + 1 and doc["step"] >= 2
    assert set(doc["mempool"]) == {"count", "bytes"}
    assert len(doc["genesis"]) == 64 and doc["accounts"] == ACCOUNTS


def test_block_by_round(node: Devnet) -> None:
    code, doc = get(node, "/block/1")
    assert code == 200
    assert doc["round"] == 1 and len(doc["hash"]) == 64
    assert doc["tx_count"] == len(doc["tx_ids"])
    cert = doc["certificate"]
    assert cert["votes"] == len(cert["signers"]) > 0 and cert["step"] >= 4
    import urllib.request

    with urllib.request.urlopen(node.url(0, "/block/1?raw"), timeout=10) as response:
        block = Block.from_bytes(response.read())
    assert block.hash.hex() == doc["hash"] and block.round == 1
    assert get(node, "/block/x")[0] == 400
    code, doc = get(node, "/block/99999999")
    assert code == 404 and "no committed block" in doc["error"]
    code, doc = get(node, "/hashes?from=1&to=1")
    assert code == 200 and len(doc["hashes"]) == 1


def wait_for_tip(net: Devnet, round: int) -> dict:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        code, doc = get(net, "/status")
        if code == 200 and doc["tip"]["round"] >= round:
            return doc
        time.sleep(0.1)
    raise AssertionError(f"no block {round} within {DEADLINE} s")


def test_blocks_carry_the_certificate_of_the_block_before(node: Devnet) -> None:
    wait_for_tip(node, 3)
    for r in (2, 3):
        code, doc = get(node, f"/block/{r}")
        code_prev, prev = get(node, f"/block/{r - 1}")
        assert code == code_prev == 200
        if doc["empty"] or prev["empty"]:
            assert doc["prev_cert"] is None
            continue
        carried = doc["prev_cert"]
        assert carried["round"] == r - 1 and carried["b"] == 0
        assert carried["block_hash"] == prev["hash"] and carried["leader"] == prev["producer"]
        assert carried["votes"] == len(carried["signers"]) > 0 and carried["substitutes"] == []


def test_rewards_add_up_to_what_was_minted(node: Devnet) -> None:
    """On a real node: the balances of all accounts sum to the genesis total plus the units
    the block rewards minted, and some were minted (the devnet genesis turns rewards on)."""
    for _ in range(20):
        before = wait_for_tip(node, 3)
        total = sum(get(node, f"/account/{a}")[1]["balance"] for a in range(ACCOUNTS))
        after = get(node, "/status")[1]
        if after["tip"]["round"] == before["tip"]["round"]:
            break  # no block in between: a consistent reading
    else:
        raise AssertionError("a block was committed during each of 20 readings")
    supply = after["supply"]
    assert supply["minted"] > 0 and supply["reward_level"] >= 1_000
    assert total == supply["total"] == supply["genesis"] + supply["minted"]


def test_account_by_id_and_key(node: Devnet) -> None:
    code, by_id = get(node, "/account/1")
    assert code == 200 and by_id["id"] == 1
    assert by_id["public_key"] == keypair(1).public_key.hex()
    code, by_key = get(node, f"/account/{by_id['public_key']}")
    assert code == 200 and by_key["id"] == 1 and by_key["balance"] == by_id["balance"]
    assert get(node, "/account/nope")[0] == 400
    assert get(node, f"/account/{'ab' * 32}")[0] == 404
    assert get(node, "/account/123456")[0] == 404


def test_metrics_in_prometheus_text(node: Devnet) -> None:
    import urllib.request

    signed = sign_transfers(SEED, ACCOUNTS, 1, node.genesis_hash)[0]
    post(node, signed[:-1] + bytes([signed[-1] ^ 1]))  # a bad signature, counted
    with urllib.request.urlopen(node.url(0, "/metrics"), timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    assert "# TYPE echorand_blocks_committed_total counter" in text
    assert "# TYPE echorand_mempool_transactions gauge" in text
    values = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert int(values["echorand_blocks_committed_total"]) >= 1
    assert int(values['echorand_transactions_refused_total{reason="bad signature"}']) >= 1
    assert values["echorand_net_peers"] == "0" and int(values["echorand_tip_round"]) >= 1
