"""The node's HTTP API: JSON (orjson) on aiohttp, on the node's uvloop (docs/api.md).

The routes and their documents are described by `echorand.node.openapi` (served at
`GET /openapi.json`, kept in docs/api.md); the documents are built by the pure functions
of `echorand.node.answers`. This module only wires them: every refusal is a 4xx JSON
`{"error": reason}`, aiohttp's own (404 no route, 405, 413 body too large) included.

- `POST /tx`: admit transactions (153-byte encodings back to back, or JSON hex).
- `GET /status`, `GET /block/{round}` (`?raw`: the encoding), `GET /hashes?from=A&to=B`,
  `GET /account/{key hex or id}`, `GET /metrics` (Prometheus text), `GET /openapi.json`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import orjson
from aiohttp import web

from echorand.node.answers import (
    ApiError,
    account_answer,
    block_answer,
    forks_answer,
    hashes_answer,
    raw_block,
    transactions_from_body,
    tx_answer,
)
from echorand.node.metrics import Metric, exposition
from echorand.node.openapi import openapi_document
from echorand.wire.messages import MAX_BATCH_TXS, Transaction
from echorand.wire.transactions import TX_SIZE

if TYPE_CHECKING:
    from collections import Counter

    from echorand.core.events import ForkEvidence
    from echorand.ledger.ledger import Ledger
    from echorand.ledger.mempool import Mempool
    from echorand.node.backpressure import Busy

log = logging.getLogger(__name__)

MAX_BODY = 2 * MAX_BATCH_TXS * TX_SIZE + (1 << 16)
"""Bytes a request body may have: the JSON (hex) form of MAX_BATCH_TXS transactions."""
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeView(Protocol):
    """What the API reads and calls of a node (`echorand.node.node.Node` is one)."""

    @property
    def ledger(self) -> Ledger: ...

    @property
    def mempool(self) -> Mempool: ...

    @property
    def commit_times(self) -> Mapping[int, int]: ...

    @property
    def forks(self) -> Sequence[ForkEvidence]: ...

    @property
    def counters(self) -> Counter[str]: ...

    async def submit(
        self, transactions: Sequence[Transaction], *, client: str | None = None
    ) -> list[str | None]: ...

    def busy(self, wanted: int = 1, client: str | None = None) -> Busy | None: ...

    def status(self) -> dict[str, object]: ...

    def metrics(self) -> list[Metric]: ...


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

JSON_TX_SIZE = 2 * TX_SIZE + 3
"""A transaction's share of a JSON body: its hex digits, the quotes and a comma."""


def _request_txs(request: web.Request) -> int:
    """How many transactions a `POST /tx` asks to submit, from its length (1 if unsaid)."""
    length = request.content_length
    if not length:
        return 1
    size = JSON_TX_SIZE if request.content_type == "application/json" else TX_SIZE
    return max(1, length // size)


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(status: int, reason: str) -> web.Response:
    return json_response({"error": reason}, status)


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as `{"error": reason}`: ours (ApiError) and aiohttp's (no such route,
    method not allowed, body too large); anything else is a 500 that is logged."""
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.status, e.reason)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        response = error_response(e.status, _reason(request, e))
        if isinstance(e, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ", ".join(sorted(e.allowed_methods))
        return response
    except Exception:
        log.exception("the API failed on %s %s", request.method, request.path)
        return error_response(500, "internal error (logged by the node)")


def _reason(request: web.Request, e: web.HTTPException) -> str:
    """aiohttp's refusal in words that name the request."""
    where = f"{request.method} {request.path}"
    if isinstance(e, web.HTTPNotFound):
        return f"{where}: no such endpoint (GET /openapi.json lists them)"
    if isinstance(e, web.HTTPMethodNotAllowed):
        return f"{where}: method not allowed (allowed: {', '.join(sorted(e.allowed_methods))})"
    if isinstance(e, web.HTTPRequestEntityTooLarge):
        return f"{where}: body larger than {MAX_BODY} bytes"
    return f"{where}: {e.reason}"


class Api:
    """The HTTP server of one node."""

    def __init__(self, node: NodeView) -> None:
        self.node = node
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[errors_as_json])
        self.app.add_routes(
            [
                web.post("/tx", self.post_tx),
                web.get("/status", self.get_status),
                web.get("/block/{round}", self.get_block),
                web.get("/hashes", self.get_hashes),
                web.get("/account/{account}", self.get_account),
                web.get("/metrics", self.get_metrics),
                web.get("/openapi.json", self.get_openapi),
                web.get("/forks", self.get_forks),
            ]
        )
        self._openapi = orjson.dumps(openapi_document())
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
        client = request.remote or "?"  # its share of the pace (docs/protocol.md §13)
        busy = self.node.busy(_request_txs(request), client)
        if busy is not None:
            # Refused before the body is read: a node that is behind spends nothing on it.
            self.node.counters["api_busy"] += 1
            response = json_response(busy.to_json(), 429)
            response.headers["Retry-After"] = str(busy.retry_after_s)
            return response
        txs = transactions_from_body(await request.read(), request.content_type)
        status, doc = tx_answer(txs, await self.node.submit(txs, client=client))
        return json_response(doc, status)

    async def get_status(self, request: web.Request) -> web.Response:
        return json_response(self.node.status())

    async def get_block(self, request: web.Request) -> web.Response:
        text = request.match_info["round"]
        if "raw" in request.query:
            body = raw_block(self.node.ledger, text)
            return web.Response(body=body, content_type="application/octet-stream")
        return json_response(block_answer(self.node.ledger, self.node.commit_times, text))

    async def get_hashes(self, request: web.Request) -> web.Response:
        return json_response(hashes_answer(self.node.ledger, request.query))

    async def get_account(self, request: web.Request) -> web.Response:
        text = request.match_info["account"]
        return json_response(account_answer(self.node.ledger, self.node.mempool, text))

    async def get_metrics(self, request: web.Request) -> web.Response:
        body = exposition(self.node.metrics()).encode()
        response = web.Response(body=body)
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    async def get_forks(self, request: web.Request) -> web.Response:
        return json_response(forks_answer(self.node.forks))

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")
