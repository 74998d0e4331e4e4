"""The node's HTTP API (echorand.node.api) on a one-node devnet: a real process on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from _helpers import running, until

from echorand.tools.client import http_json
from echorand.tools.devnet import Devnet, sign_transfers
from echorand.tools.genesis import devnet_master
from echorand.wire.crypto import Keypair
from echorand.wire.messages import Block
from echorand.wire.transactions import Transaction, devnet_seeds, transfer

SEED = "test-http-api"
ACCOUNTS = 8


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("api"), nodes=1, accounts=ACCOUNTS, seed=SEED)
    with running(net):
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
    until(lambda: get(node, "/account/0")[1]["nonce"] > tx.nonce, "the transfer's commit", node)


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
    assert set(doc["mempool"]) == {"count", "bytes", "limit", "block_txs"}
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
    """The node's /status once its tip is at `round` or later."""

    def status() -> dict | None:
        doc = net.status(0)
        return doc if doc is not None and doc["tip"]["round"] >= round else None

    return until(status, f"block {round}", net)


def carried_checked(net: Devnet, last: int) -> int:
    """Check the carried certificates of rounds 2 to `last`: a block after an empty one
    (or an empty one) carries none, a proposed block after a proposed one carries the
    certificate of the one before. The count of rounds of the second kind."""
    checked = 0
    for r in range(2, last + 1):
        code, doc = get(net, f"/block/{r}")
        code_prev, prev = get(net, f"/block/{r - 1}")
        assert code == code_prev == 200
        if doc["empty"] or prev["empty"]:
            assert doc["prev_cert"] is None
            continue
        carried = doc["prev_cert"]
        assert carried["round"] == r - 1 and carried["b"] == 0
        assert carried["block_hash"] == prev["hash"] and carried["leader"] == prev["producer"]
        assert carried["votes"] == len(carried["signers"]) > 0 and carried["substitutes"] == []
        checked += 1
    return checked


def test_blocks_carry_the_certificate_of_the_block_before(node: Devnet) -> None:
    """Not vacuous: it waits for two proposed blocks in a row (the one node produces every
    block it can, so they come at once) and checks at least that pair."""
    checked = until(
        lambda: carried_checked(node, wait_for_tip(node, 3)["tip"]["round"]),
        "a proposed block after a proposed one",
        node,
    )
    assert checked >= 1


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
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    assert "# TYPE echorand_blocks_committed_total counter" in text
    assert "# TYPE echorand_mempool_transactions gauge" in text
    values = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert int(values["echorand_blocks_committed_total"]) >= 1
    assert int(values['echorand_transactions_refused_total{reason="bad signature"}']) >= 1
    assert values["echorand_peers"] == "0" and int(values["echorand_tip_round"]) >= 1


# --- hostile inputs: every one a 4xx with a reason (issue 4) ------------------------------


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/block/%C2%B2", 400, "is not a number"),  # "²": str.isdigit() says yes
        ("/block/" + "9" * 5000, 400, "is not a number"),  # int() refuses > 4300 digits
        ("/block/18446744073709551616", 400, "above 2^64 - 1"),
        ("/block/-1", 400, "is not a number"),
        ("/block/0", 404, "no committed block"),
        ("/block/latest", 200, None),
        ("/account/%C2%B2", 400, "neither a 64-hex-digit key nor an id"),
        ("/account/" + "1" * 5000, 400, "neither a 64-hex-digit key nor an id"),
        ("/account/18446744073709551616", 400, "above 2^64 - 1"),
        ("/account/18446744073709551615", 404, "no such account"),
        ("/hashes?from=%C2%B2", 400, "from: '²' is not a number"),
        ("/hashes?to=" + "7" * 5000, 400, "to: "),
        ("/hashes?from=1&to=x", 400, "to: 'x' is not a number"),
        ("/hashes?form=1", 400, "unknown parameter"),
        ("/nowhere", 404, "no such endpoint"),
    ],
)
def test_hostile_paths_get_a_4xx_with_a_reason(
    node: Devnet, path: str, status: int, reason: str | None
) -> None:
    code, doc = get(node, path)
    assert code == status, doc
    if reason is not None:
        assert reason in doc["error"]


def test_hashes_ranges(node: Devnet) -> None:
    wait_for_tip(node, 2)
    code, doc = get(node, "/hashes?from=5&to=2")
    assert code == 200 and doc == {"from": 5, "hashes": []}
    code, doc = get(node, "/hashes?from=0&to=1")
    assert code == 200 and doc["hashes"][0] == node.genesis_hash.hex() and len(doc["hashes"]) == 2
    code, doc = get(node, f"/hashes?from=1&to={2**64 - 1}")  # capped at the tip
    assert code == 200 and 2 <= len(doc["hashes"]) <= 10_000
    code, doc = get(node, "/hashes?from=18446744073709551615")
    assert code == 200 and doc["hashes"] == []


def test_the_batch_and_body_limits(node: Devnet) -> None:
    import urllib.request

    from echorand.node.api import MAX_BODY

    code, doc = post(node, bytes(153 * 10_001))
    assert code == 400 and "10001 transactions, at most 10000" in doc["error"]
    body = orjson.dumps({"transactions": ["00" * 153] * 10_001})
    assert len(body) <= MAX_BODY
    code, doc = post(node, body, "application/json")
    assert code == 400 and "at most 10000" in doc["error"]
    code, doc = post(node, bytes(MAX_BODY + 1))
    assert code == 413 and f"larger than {MAX_BODY} bytes" in doc["error"]
    request = urllib.request.Request(node.url(0, "/status"), method="DELETE")
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 405 and "GET" in e.headers["Allow"]
        assert "method not allowed" in orjson.loads(e.read())["error"]
    else:
        raise AssertionError("DELETE /status was answered")


# --- the OpenAPI document, and schemathesis against it ---------------------------------


def test_openapi_is_served_and_kept_in_docs(node: Devnet) -> None:
    from pathlib import Path

    from echorand.node.openapi import markdown_block, openapi_document

    code, doc = get(node, "/openapi.json")
    assert code == 200 and doc == orjson.loads(orjson.dumps(openapi_document()))
    assert doc["openapi"].startswith("3.1")
    routes = {"/tx", "/status", "/block/{round}", "/hashes", "/account/{account}", "/metrics"}
    routes |= {"/forks"}
    assert routes | {"/openapi.json"} == set(doc["paths"])
    docs = Path(__file__).parents[2] / "docs" / "api.md"
    kept = orjson.loads(markdown_block(docs.read_text(encoding="utf-8")))
    assert kept == doc, "docs/api.md is stale: python -m echorand.node.openapi docs/api.md"


def schemathesis_command(
    url: str, examples: int, seed: int, *, deterministic: bool = True
) -> list[str]:
    """`st run` with every check and bounded examples: deterministic in the suite, from
    `seed` in bench/api_fuzz.py."""
    import shutil
    import sys
    from pathlib import Path

    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st is not None, "schemathesis is a test dependency: pip install '.[test]'"
    config = Path(__file__).parents[1] / "data" / "schemathesis.toml"
    return [
        st,
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        *(["--generation-deterministic"] if deterministic else ["--seed", str(seed)]),
        "--workers",
        "1",
    ]


def test_schemathesis_finds_no_5xx_and_every_answer_conforms(node: Devnet) -> None:
    import subprocess

    url = node.url(0, "")
    command = schemathesis_command(url, examples=25, seed=7)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    tail = "\n".join(line[:300] for line in done.stdout.splitlines()[-60:])
    assert done.returncode == 0, f"schemathesis failed:\n{tail}\n{done.stderr[-2000:]}"
    assert "passed" in done.stdout and "failure" not in done.stdout.split("SUMMARY")[-1]


# --- metrics read by the real tools -------------------------------------------------------


def metrics_text(node: Devnet) -> str:
    import urllib.request

    with urllib.request.urlopen(node.url(0, "/metrics"), timeout=10) as response:
        return response.read().decode()


def test_metrics_parse_with_prometheus_client(node: Devnet) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    wait_for_tip(node, 3)
    families = {f.name: f for f in text_string_to_metric_families(metrics_text(node))}
    assert families["echorand_blocks_committed"].type == "counter"
    assert families["echorand_mempool_bytes"].type == "gauge"
    for family in families.values():
        assert family.documentation, f"{family.name}: no HELP"
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
    steps = families["echorand_commit_step"]
    assert steps.type == "histogram"
    count = next(s.value for s in steps.samples if s.name.endswith("_count"))
    inf = next(s.value for s in steps.samples if s.labels.get("le") == "+Inf")
    assert count == inf >= 2
    rounds = families["echorand_round_duration_seconds"]
    assert next(s.value for s in rounds.samples if s.name.endswith("_sum")) > 0


def test_promtool_check_metrics(node: Devnet) -> None:
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian's prometheus package; .ci/run installs it)")
    done = subprocess.run(
        [promtool, "check", "metrics"], input=metrics_text(node), capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_grafana_dashboard_charts_only_exported_metrics(node: Devnet) -> None:
    import json
    import re
    from pathlib import Path

    from echorand.tools.dashboard import dashboard, text

    path = Path(__file__).parents[2] / "docs" / "grafana" / "echorand.json"
    assert path.read_text() == text(), "stale: python -m echorand.tools.dashboard > " + str(path)
    samples = {
        line.split("{")[0].split(" ")[0]
        for line in metrics_text(node).splitlines()
        if line and not line.startswith("#")
    }
    # families that have no sample yet (labelled counters before their first count)
    families = {
        line.split()[2] for line in metrics_text(node).splitlines() if line.startswith("# TYPE")
    }
    exprs = [t["expr"] for p in json.loads(path.read_text())["panels"] for t in p["targets"]]
    assert len(exprs) >= 20 and len(dashboard()["panels"]) >= 12
    for expr in exprs:
        for name in re.findall(r"echorand_[a-z_]+", expr):
            assert name in samples or name in families, f"{name} is not exported: {expr}"
