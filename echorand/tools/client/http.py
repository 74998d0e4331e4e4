"""A small typed HTTP client of the node's API (docs/api.md), on the standard library.

`NodeClient(url)` has one method per endpoint; a refusal (4xx or 5xx) raises `NodeError`
with the node's status and reason, an unreachable node `NodeUnreachable`. A busy node
(429 to `POST /tx`: its mempool holds more than it commits in the next rounds) is waited
for as its `Retry-After` says, `busy_retries` times, then raises `NodeBusy`. Used by the
client commands (`echorand status`, ...), the devnet and the tests.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TypedDict, cast

import orjson

from echorand.wire.transactions import Transaction

__all__ = [
    "DEFAULT_NODE",
    "Account",
    "Block",
    "NodeBusy",
    "NodeClient",
    "NodeError",
    "NodeUnreachable",
    "Status",
    "SubmitResult",
    "TxResult",
    "default_node_url",
    "http_json",
]

DEFAULT_NODE = "http://127.0.0.1:8000"
NODE_ENV = "ECHORAND_NODE"


def default_node_url() -> str:
    """`$ECHORAND_NODE`, else http://127.0.0.1:8000."""
    return os.environ.get(NODE_ENV) or DEFAULT_NODE


class NodeError(Exception):
    """The node refused a request: its HTTP status and reason (`{"error": ...}`)."""

    def __init__(self, status: int, reason: str, doc: Any = None) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.doc = doc


class NodeBusy(NodeError):
    """The node refused a submission for now (429): retry after `retry_after` seconds."""

    def __init__(self, reason: str, retry_after: float, doc: Any = None) -> None:
        super().__init__(429, reason, doc)
        self.retry_after = retry_after


def retry_after(headers: Any, doc: Any) -> float:
    """Seconds a busy answer asks to wait: its `retry_after_ms`, else its `Retry-After`
    header (whole seconds), else one second."""
    if isinstance(doc, dict) and isinstance(doc.get("retry_after_ms"), int):
        return max(0.001, doc["retry_after_ms"] / 1000)
    text = headers.get("Retry-After") if headers is not None else None
    if text is not None and text.strip().isdigit():
        return float(text.strip())
    return 1.0


class NodeUnreachable(OSError):
    """No answer from the node (refused connection, timeout, not HTTP)."""


class Tip(TypedDict):
    round: int
    hash: str


class Status(TypedDict, total=False):
    genesis: str
    round: int | None
    step: int | None
    tip: Tip
    final_round: int
    peers: int
    mempool: dict[str, int]
    sync: dict[str, Any]
    accounts: int
    supply: dict[str, int]
    uptime_s: float


class Account(TypedDict):
    id: int
    public_key: str
    balance: int
    nonce: int
    delegate: int | None
    queued: int


class Block(TypedDict, total=False):
    round: int
    hash: str
    prev_hash: str
    empty: bool
    final: bool
    producer: int | None
    tx_count: int
    tx_ids: list[str]
    certificate: dict[str, Any]
    prev_cert: dict[str, Any] | None
    committed_at_ms: int | None


class TxResult(TypedDict, total=False):
    id: str
    accepted: bool
    error: str


class SubmitResult(TypedDict):
    accepted: int
    refused: int
    results: list[TxResult]


def request(
    url: str,
    body: bytes | None = None,
    *,
    content_type: str = "application/octet-stream",
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """(status, body) of a GET, or a POST of `body`; NodeUnreachable without an answer."""
    status, data, _ = request_with_headers(url, body, content_type=content_type, timeout=timeout)
    return status, data


def request_with_headers(
    url: str,
    body: bytes | None = None,
    *,
    content_type: str = "application/octet-stream",
    timeout: float = 10.0,
) -> tuple[int, bytes, Any]:
    """(status, body, headers) of a GET, or a POST of `body`."""
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise NodeUnreachable(f"{url}: {reason}") from None


def http_json(url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    """(status, decoded JSON or None) of a GET, or a POST of raw bytes."""
    status, data = request(url, body, timeout=timeout)
    return status, orjson.loads(data) if data else None


def _reason(status: int, data: bytes) -> tuple[str, Any]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode(errors="replace").strip() or f"HTTP {status}", None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return doc["error"], doc
    return f"HTTP {status}", doc


class NodeClient:
    """The API of the node at `url` (default: `default_node_url()`)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 10.0,
        busy_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`busy_retries`: how many times a busy node (429) is waited for, as its
        `Retry-After` says, before `submit` raises `NodeBusy`."""
        self.url = (url or default_node_url()).rstrip("/")
        self.timeout = timeout
        self.busy_retries = busy_retries
        self.sleep = sleep
        self.busy_waits = 0
        """Times this client waited for a busy node."""

    def _get(self, path: str) -> bytes:
        status, data = request(self.url + path, timeout=self.timeout)
        if status != 200:
            raise NodeError(status, *_reason(status, data))
        return data

    def get_json(self, path: str) -> Any:
        return orjson.loads(self._get(path))

    def status(self) -> Status:
        return cast(Status, self.get_json("/status"))

    def account(self, key_or_id: str | int) -> Account:
        return cast(Account, self.get_json(f"/account/{urllib.parse.quote(str(key_or_id))}"))

    def block(self, round: int | str = "latest") -> Block:
        return cast(Block, self.get_json(f"/block/{urllib.parse.quote(str(round))}"))

    def block_raw(self, round: int) -> bytes:
        return self._get(f"/block/{round}?raw")

    def hashes(self, first: int, last: int) -> list[str]:
        """The block hashes of rounds first..last (fewer past the tip), in requests of at
        most 10 000 rounds."""
        out: list[str] = []
        while first <= last:
            upto = min(last, first + 9_999)
            got = self.get_json(f"/hashes?from={first}&to={upto}")["hashes"]
            out += got
            if len(got) < upto - first + 1:
                break
            first = upto + 1
        return out

    def metrics_text(self) -> str:
        return self._get("/metrics").decode()

    def openapi(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.get_json("/openapi.json"))

    def submit(self, transactions: Sequence[Transaction]) -> SubmitResult:
        """Submit encoded transactions. A refusal of some is an answer (each result says
        why), not an error; a malformed request raises NodeError. A busy node is waited
        for (`busy_retries` times, as long as it asks), then NodeBusy."""
        body = b"".join(tx.encode() for tx in transactions)
        waits = 0
        while True:
            status, data, headers = request_with_headers(
                self.url + "/tx", body, timeout=self.timeout
            )
            if status != 429:
                break
            reason, doc = _reason(status, data)
            wait = retry_after(headers, doc)
            if waits >= self.busy_retries:
                raise NodeBusy(reason, wait, doc)
            waits += 1
            self.busy_waits += 1
            self.sleep(wait)
        doc = orjson.loads(data) if data else None
        if status in (200, 400) and isinstance(doc, dict) and "results" in doc:
            return cast(SubmitResult, doc)
        raise NodeError(status, *_reason(status, data))
