"""What the HTTP API answers: pure functions of the node's state, no aiohttp (docs/api.md).

Each function takes what it reads (the ledger, the mempool, the request's text) and returns
a JSON-able document, or raises `ApiError` with the HTTP status and a reason. `echorand.node.api`
only wires them to routes; `echorand.node.openapi` describes every document they return.

Numbers in paths and queries are ASCII digits only (`[0-9]{1,20}`, at most 2^64 - 1):
`str.isdigit` accepts "²" and `int` refuses 5 000 digits, and neither may become a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import orjson

from echorand.protocol.delegation import Mode
from echorand.wire.messages import (
    MAX_BATCH_TXS,
    Certificate,
    DecodeError,
    Transaction,
    TxBatch,
    decode,
)
from echorand.wire.transactions import TX_SIZE

if TYPE_CHECKING:
    from echorand.core.events import ForkEvidence
    from echorand.ledger.ledger import Ledger
    from echorand.ledger.mempool import Mempool
    from echorand.protocol.finality import FinalCertificate

__all__ = [
    "MAX_HASHES",
    "U64_MAX",
    "ApiError",
    "account_answer",
    "block_answer",
    "final_json",
    "forks_answer",
    "hashes_answer",
    "parse_round",
    "parse_transactions",
    "parse_u64",
    "raw_block",
    "transactions_from_body",
    "tx_answer",
]

MAX_HASHES = 10_000
"""Rounds one `GET /hashes` answers at most."""
U64_MAX = (1 << 64) - 1
_U64_TEXT = re.compile(r"[0-9]{1,20}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


class ApiError(Exception):
    """A request the node refuses: the HTTP status and the reason given to the client."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _shown(text: str) -> str:
    """The client's text in a reason, cut short."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def parse_u64(text: str, what: str) -> int:
    """A u64 written in ASCII digits; ApiError 400 naming `what` otherwise."""
    if not _U64_TEXT.fullmatch(text):
        raise ApiError(400, f"{what}: {_shown(text)} is not a number (1-20 digits 0-9)")
    value = int(text)
    if value > U64_MAX:
        raise ApiError(400, f"{what}: {value} is above 2^64 - 1")
    return value


def parse_round(text: str, tip: int) -> int:
    """A committed round from a path: digits, or `latest` for the tip."""
    r = tip if text == "latest" else parse_u64(text, "round")
    if not 1 <= r <= tip:
        raise ApiError(404, f"round {r}: no committed block (the tip is {tip})")
    return r


# --- transactions ------------------------------------------------------------------------


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
    if len(items) > MAX_BATCH_TXS:
        raise ValueError(f"body: {len(items)} transactions, at most {MAX_BATCH_TXS} per request")
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


def transactions_from_body(body: bytes, content_type: str) -> list[Transaction]:
    """The transactions of a `POST /tx` body (JSON when `content_type` says so); ApiError 400."""
    try:
        if content_type == "application/json":
            body = _json_transactions(body)
        return parse_transactions(body)
    except (ValueError, DecodeError) as e:
        raise ApiError(400, str(e)) from None


def tx_answer(
    txs: Sequence[Transaction], reasons: Sequence[str | None]
) -> tuple[int, dict[str, object]]:
    """(status, document) for admitted or refused transactions: 200 when all were admitted."""
    results: list[dict[str, object]] = []
    for tx, reason in zip(txs, reasons, strict=True):
        item: dict[str, object] = {"id": tx.id.hex(), "accepted": reason is None}
        if reason is not None:
            item["error"] = reason
        results.append(item)
    refused = sum(r is not None for r in reasons)
    doc = {"accepted": len(txs) - refused, "refused": refused, "results": results}
    return (400 if refused else 200), doc


# --- blocks ------------------------------------------------------------------------------


def certificate_json(cert: Certificate) -> dict[str, object]:
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


def block_answer(ledger: Ledger, commit_times: Mapping[int, int], text: str) -> dict[str, object]:
    """`GET /block/{round}`: the committed block of round `text` (digits or `latest`)."""
    r = parse_round(text, ledger.tip)
    block, cert = ledger.block(r), ledger.certificate(r)
    if block is None or cert is None:
        raise ApiError(404, f"round {r}: no committed block")
    empty = block.is_empty
    return {
        "round": r,
        "hash": block.hash.hex(),
        "prev_hash": block.prev_hash.hex(),
        "empty": empty,
        "producer": None if empty else block.producer,
        "tx_count": 0 if empty else block.tx_count,
        "tx_ids": [] if empty else [tx.id.hex() for tx in block.transactions],
        "certificate": certificate_json(cert),
        "prev_cert": None
        if empty or block.prev_cert is None
        else certificate_json(block.prev_cert),
        "committed_at_ms": commit_times.get(r),
        "final": ledger.is_final(r),
        "final_certificate": final_json(ledger.final_certificate(r)),
    }


def final_json(cert: FinalCertificate | None) -> dict[str, object] | None:
    """The proof a block is final (PROTOCOL §6), when this node holds it: its final votes."""
    if cert is None:
        return None
    return {"votes": len(cert.votes), "signers": list(cert.signers)}


def forks_answer(evidence: Sequence[ForkEvidence]) -> dict[str, object]:
    """`GET /forks`: the fork evidence this node holds, oldest first: for each, the round and
    the two certificates (ours, and the one it met) that decide different blocks."""
    return {
        "forks": [
            {
                "round": e.round,
                "ours": {"block_hash": e.ours.block_hash.hex(), "step": e.ours.step},
                "theirs": {"block_hash": e.theirs.block_hash.hex(), "step": e.theirs.step},
            }
            for e in evidence
        ]
    }


def raw_block(ledger: Ledger, text: str) -> bytes:
    """`GET /block/{round}?raw`: the block's encoding."""
    r = parse_round(text, ledger.tip)
    block = ledger.block(r)
    if block is None:
        raise ApiError(404, f"round {r}: no committed block")
    return block.encode()


def hashes_answer(ledger: Ledger, query: Mapping[str, str]) -> dict[str, object]:
    """`GET /hashes?from=A&to=B`: the hashes of rounds A..min(B, tip, A + MAX_HASHES - 1)
    (A defaults to 1, B to the tip); none when B < A. Ask again from A + len(hashes)."""
    unknown = sorted(set(query) - {"from", "to"})
    if unknown:
        raise ApiError(400, f"{_shown(unknown[0])}: unknown parameter (from, to)")
    tip = ledger.tip
    first = parse_u64(query["from"], "from") if "from" in query else 1
    last = parse_u64(query["to"], "to") if "to" in query else tip
    last = min(last, tip, first + MAX_HASHES - 1)
    hashes = [ledger.hash(r) for r in range(first, last + 1)]
    return {"from": first, "hashes": [h.hex() for h in hashes if h is not None]}


# --- accounts ----------------------------------------------------------------------------


def account_answer(ledger: Ledger, mempool: Mempool, text: str) -> dict[str, object]:
    """`GET /account/{key or id}`: balance, nonce, delegate, queued transactions."""
    if _HEX_KEY.fullmatch(text):
        account = ledger.account_by_key(bytes.fromhex(text))
    elif _U64_TEXT.fullmatch(text):
        account = ledger.account(parse_u64(text, "account"))
    else:
        raise ApiError(400, f"account: {_shown(text)} is neither a 64-hex-digit key nor an id")
    if account is None:
        raise ApiError(404, f"account {text}: no such account")
    return {
        "id": account.id,
        "public_key": account.public_key.hex(),
        "balance": account.balance,
        "nonce": account.nonce,
        "delegate": account.delegate,
        "queued": len(mempool.pending(account.public_key)),
    }
