"""The node's HTTP API: JSON (orjson) on aiohttp, on the node's uvloop (docs/protocol.md §15).

- `POST /tx`: admit transactions. The body is 153-byte encodings back to back (any
  content type but JSON), or JSON `{"transactions": ["<306 hex digits>", ...]}`, at most
  10 000. The answer gives each transaction's id and whether it was admitted, or the
  reason; 200 when all were admitted, else 400 (the admitted ones are queued all the same).
- `GET /status`: round, step, tip, peers, mempool, sync state, and the supply (genesis
  total, units minted by block rewards, their sum, the reward level).
- `GET /block/{round}`: the committed block: hash, producer, transaction ids, a summary of
  its certificate and of the CERT_{r-1} it carries (signers, and substitutes with their
  principal and mode), local commit time (`committed_at_ms`); `?raw` for its encoding.
- `GET /hashes?from=A&to=B`: block hashes of rounds A..B (at most 10 000).
- `GET /account/{key hex or id}`: balance, nonce, delegate, queued transactions.
- `GET /metrics`: Prometheus text format.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from echorand.delegation import Mode
from echorand.messages import (
    MAX_BATCH_TXS,
    Certificate,
    DecodeError,
    Transaction,
    TxBatch,
    decode,
)
from echorand.transactions import TX_SIZE

if TYPE_CHECKING:
    from echorand.node import Node

MAX_HASHES = 10_000
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_METRIC_PREFIX = "echorand_"


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, reason: str) -> web.Response:
    return _json({"error": reason}, status)


def parse_transactions(body: bytes) -> list[Transaction]:
    """Transactions from encodings back to back; ValueError naming the one that is wrong."""
    if not body:
        raise ValueError("body: no transactions")
    if len(body) % TX_SIZE:
        raise ValueError(f"body: {len(body)} bytes is not a multiple of {TX_SIZE}")
    count = len(body) // TX_SIZE
    if count > MAX_BATCH_TXS:
        raise ValueError(f"body: {count} transactions, at most {MAX_BATCH_TXS} per request")
    try:
        batch = decode(b"\x10" + count.to_bytes(4, "big") + body)
    except DecodeError:
        for i in range(count):
            try:
                Transaction.from_bytes(body[i * TX_SIZE : (i + 1) * TX_SIZE])
            except DecodeError as e:
                raise ValueError(f"transaction {i}: {e}") from None
        raise
    assert isinstance(batch, TxBatch)
    return list(batch.transactions)


def _json_transactions(body: bytes) -> bytes:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"body: not JSON: {e}") from None
    items = doc.get("transactions") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError('body: expected {"transactions": ["<hex>", ...]}')
    out = bytearray()
    for i, item in enumerate(items):
        try:
            raw = bytes.fromhex(item) if isinstance(item, str) else None
        except ValueError:
            raw = None
        if raw is None or len(raw) != TX_SIZE:
            raise ValueError(f"transactions[{i}]: expected {2 * TX_SIZE} hex digits")
        out += raw
    return bytes(out)


def prometheus_text(metrics: dict[str, dict[str, int] | int]) -> str:
    """The Prometheus text exposition of the node's metrics (dict values become labels)."""
    lines = []
    for name, value in sorted(metrics.items()):
        full = _METRIC_PREFIX + name
        kind = "counter" if name.endswith("_total") else "gauge"
        lines.append(f"# TYPE {full} {kind}")
        if isinstance(value, dict):
            label = "reason"
            for key, v in sorted(value.items()):
                text = str(key).replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{full}{{{label}="{text}"}} {v}')
        else:
            lines.append(f"{full} {value}")
    return "\n".join(lines) + "\n"


def _certificate_json(cert: Certificate) -> dict[str, object]:
    """A certificate without its signatures: who voted, and who voted in whose seats."""
    return {
        "round": cert.round,
        "step": cert.step,
        "b": cert.b,
        "block_hash": cert.block_hash.hex(),
        "leader": cert.leader,
        "votes": len(cert.signers),
        "signers": list(cert.signers),
        "substitutes": [
            {"principal": principal, "signer": signer, "mode": Mode(mode).name.lower()}
            for principal, signer, mode, _ in cert.substitutes
        ],
    }


class Api:
    """The HTTP server of one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.app = web.Application(client_max_size=2 * MAX_BATCH_TXS * TX_SIZE + (1 << 16))
        self.app.add_routes(
            [
                web.post("/tx", self.post_tx),
                web.get("/status", self.get_status),
                web.get("/block/{round}", self.get_block),
                web.get("/hashes", self.get_hashes),
                web.get("/account/{account}", self.get_account),
                web.get("/metrics", self.get_metrics),
            ]
        )
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on `host:port` (0: a free port); returns the port."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server  # aiohttp keeps the listening sockets here
        sockets = getattr(server, "sockets", None) or ()
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- handlers ------------------------------------------------------------------

    async def post_tx(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            if request.content_type == "application/json":
                body = _json_transactions(body)
            txs = parse_transactions(body)
        except ValueError as e:
            return _error(400, str(e))
        reasons = await self.node.submit(txs)
        results = []
        for tx, reason in zip(txs, reasons, strict=True):
            item: dict[str, object] = {"id": tx.id.hex()}
            if reason is None:
                item["accepted"] = True
            else:
                item["accepted"] = False
                item["error"] = reason
            results.append(item)
        refused = sum(r is not None for r in reasons)
        return _json(
            {"accepted": len(txs) - refused, "refused": refused, "results": results},
            400 if refused else 200,
        )

    async def get_status(self, request: web.Request) -> web.Response:
        return _json(self.node.status())

    async def get_block(self, request: web.Request) -> web.Response:
        text = request.match_info["round"]
        if not text.isdigit():
            return _error(400, f"round: {text!r} is not a number")
        r = int(text)
        ledger = self.node.ledger
        if not 1 <= r <= ledger.tip:
            return _error(404, f"round {r}: no committed block (the tip is {ledger.tip})")
        block, cert = ledger.block(r), ledger.certificate(r)
        if block is None or cert is None:
            return _error(404, f"round {r}: no committed block")
        if "raw" in request.query:
            return web.Response(body=block.encode(), content_type="application/octet-stream")
        empty = block.is_empty
        return _json(
            {
                "round": r,
                "hash": block.hash.hex(),
                "prev_hash": block.prev_hash.hex(),
                "empty": empty,
                "producer": None if empty else block.producer,
                "tx_count": 0 if empty else block.tx_count,
                "tx_ids": [] if empty else [tx.id.hex() for tx in block.transactions],
                "certificate": _certificate_json(cert),
                "prev_cert": None
                if empty or block.prev_cert is None
                else _certificate_json(block.prev_cert),
                "committed_at_ms": self.node.commit_times.get(r),
            }
        )

    async def get_hashes(self, request: web.Request) -> web.Response:
        ledger = self.node.ledger
        try:
            first = int(request.query.get("from", "1"))
            last = int(request.query.get("to", str(ledger.tip)))
        except ValueError:
            return _error(400, "from, to: must be numbers")
        last = min(last, ledger.tip)
        if first < 0 or last - first + 1 > MAX_HASHES:
            return _error(400, f"from..to: at most {MAX_HASHES} rounds from round 0")
        hashes = [ledger.hash(r) for r in range(first, last + 1)]
        return _json({"from": first, "hashes": [h.hex() for h in hashes if h is not None]})

    async def get_account(self, request: web.Request) -> web.Response:
        text = request.match_info["account"]
        ledger = self.node.ledger
        if _HEX_KEY.fullmatch(text):
            account = ledger.account_by_key(bytes.fromhex(text))
        elif text.isdigit():
            account = ledger.account(int(text))
        else:
            return _error(400, f"account: {text!r} is neither a 64-hex-digit key nor an id")
        if account is None:
            return _error(404, f"account {text}: no such account")
        return _json(
            {
                "id": account.id,
                "public_key": account.public_key.hex(),
                "balance": account.balance,
                "nonce": account.nonce,
                "delegate": account.delegate,
                "queued": len(self.node.mempool.pending(account.public_key)),
            }
        )

    async def get_metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            text=prometheus_text(self.node.metrics()),
            content_type="text/plain",
            charset="utf-8",
        )
