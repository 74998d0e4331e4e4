"""The OpenAPI 3.1 description of the node's HTTP API (served at `GET /openapi.json`).

Every object schema lists its properties in one dict: all are required and no other is
allowed (`additionalProperties: false`), so a field added to an answer of
`echorand.node.answers` is one line here, and the schemathesis test of a live node
(tests/node/test_http_api.py) fails until it is. docs/api.md holds this document as JSON
(`python -m echorand.node.openapi` prints it; a test keeps the two equal).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

from echorand import __version__
from echorand.node.answers import MAX_HASHES, U64_MAX
from echorand.protocol.delegation import Mode
from echorand.wire.messages import MAX_BATCH_TXS
from echorand.wire.transactions import TX_SIZE

__all__ = ["openapi_document"]

Schema = dict[str, Any]

U64: Schema = {"type": "integer", "minimum": 0, "maximum": U64_MAX}
BOOL: Schema = {"type": "boolean"}
HASH: Schema = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
HEX_TX: Schema = {"type": "string", "pattern": f"^[0-9a-fA-F]{{{2 * TX_SIZE}}}$"}


def obj(properties: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """An object with exactly these properties, all required but `optional`."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


def nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Schema, **limits: int) -> Schema:
    return {"type": "array", "items": items, **limits}


SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": {"type": "string", "description": "why the request was refused"}}),
    "Busy": obj(
        {
            "error": {"type": "string", "description": "why the node is busy"},
            "retry_after_ms": {"type": "integer", "minimum": 1},
            "queued": U64,
            "limit": U64,
        }
    ),
    "Status": obj(
        {
            "genesis": HASH,
            "round": nullable(U64),
            "step": nullable(U64),
            "tip": obj({"round": U64, "hash": HASH}),
            "peers": U64,
            "network": obj(
                {
                    "peers": array(
                        obj({"address": {"type": "string"}, "key": HASH, "outbound": BOOL})
                    ),
                    "banned": {
                        "type": "object",
                        "description": "per banned host: seconds left, bans so far, last reason",
                        "additionalProperties": obj(
                            {
                                "seconds": {"type": "number"},
                                "bans": U64,
                                "reason": {"type": "string"},
                            }
                        ),
                    },
                    "scores": {
                        "type": "object",
                        "description": "per host, its decayed misbehaviour score (when >= 1)",
                        "additionalProperties": {"type": "number", "minimum": 0},
                    },
                }
            ),
            "mempool": obj({"count": U64, "bytes": U64, "limit": U64, "block_txs": U64}),
            "sync": obj(
                {
                    "joined": {"type": "boolean"},
                    "caught_up": {"type": "boolean"},
                    "target": U64,
                    "synced_blocks": U64,
                }
            ),
            "accounts": U64,
            "supply": obj({"genesis": U64, "minted": U64, "total": U64, "reward_level": U64}),
            "final_round": U64,
            "forks": U64,
            "halted": nullable({"type": "string"}),
            "uptime_s": {"type": "number", "minimum": 0},
        }
    ),
    "Substitute": obj(
        {
            "principal": U64,
            "signer": U64,
            "mode": {"type": "string", "enum": [m.name.lower() for m in Mode]},
        }
    ),
    "Certificate": obj(
        {
            "round": U64,
            "step": U64,
            "b": {"type": "integer", "enum": [0, 1]},
            "block_hash": HASH,
            "leader": U64,
            "votes": U64,
            "signers": array(U64),
            "substitutes": array(ref("Substitute")),
        }
    ),
    "Block": obj(
        {
            "round": U64,
            "hash": HASH,
            "prev_hash": HASH,
            "empty": {"type": "boolean"},
            "producer": nullable(U64),
            "tx_count": U64,
            "tx_ids": array(HASH),
            "certificate": ref("Certificate"),
            "prev_cert": nullable(ref("Certificate")),
            "committed_at_ms": nullable(U64),
            "final": {"type": "boolean"},
            "final_certificate": nullable(obj({"votes": U64, "signers": array(U64)})),
        }
    ),
    "ForkSide": obj({"block_hash": HASH, "step": U64}),
    "Forks": obj(
        {"forks": array(obj({"round": U64, "ours": ref("ForkSide"), "theirs": ref("ForkSide")}))}
    ),
    "Hashes": obj({"from": U64, "hashes": array(HASH, maxItems=MAX_HASHES)}),
    "Account": obj(
        {
            "id": U64,
            "public_key": HASH,
            "balance": U64,
            "nonce": U64,
            "delegate": nullable(U64),
            "queued": U64,
        }
    ),
    "TxResult": obj(
        {"id": HASH, "accepted": {"type": "boolean"}, "error": {"type": "string"}},
        optional=("error",),
    ),
    "TxResults": obj({"accepted": U64, "refused": U64, "results": array(ref("TxResult"))}),
    "TxHex": obj({"transactions": array(HEX_TX, minItems=1, maxItems=MAX_BATCH_TXS)}),
}


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Schema:
    return _json(ref("Error"), description)


def _get(summary: str, ok: Schema, errors: dict[str, str], **extra: Any) -> Schema:
    responses = {"200": ok, **{code: _error(text) for code, text in errors.items()}}
    return {"get": {"summary": summary, "responses": responses, **extra}}


ROUND_PARAMETER: Schema = {
    "name": "round",
    "in": "path",
    "required": True,
    "description": "a committed round (1 .. tip), or `latest` for the tip",
    "schema": {"anyOf": [U64, {"type": "string", "enum": ["latest"]}]},
}
ACCOUNT_PARAMETER: Schema = {
    "name": "account",
    "in": "path",
    "required": True,
    "description": "the account's public key (64 hex digits) or its id",
    "schema": {"anyOf": [U64, {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}]},
}
HASHES_PARAMETERS: list[Schema] = [
    {"name": "from", "in": "query", "description": "the first round (default 1)", "schema": U64},
    {
        "name": "to",
        "in": "query",
        "description": "the last round (default: the tip)",
        "schema": U64,
    },
]

PATHS: dict[str, Schema] = {
    "/status": _get(
        "the node: round, step, tip, peers, mempool, sync, supply",
        _json(ref("Status"), "the node's state"),
        {},
    ),
    "/block/{round}": _get(
        "a committed block with a summary of its certificate and of the one it carries",
        {
            "description": "the block (`?raw`: its encoding)",
            "content": {
                "application/json": {"schema": ref("Block")},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        {"400": "the round is not a number", "404": "no committed block at that round"},
        parameters=[
            ROUND_PARAMETER,
            {
                "name": "raw",
                "in": "query",
                "description": "present: answer the block's encoding",
                "allowEmptyValue": True,
                "schema": {"type": "string"},
            },
        ],
    ),
    "/hashes": _get(
        f"the block hashes of rounds from..min(to, tip), at most {MAX_HASHES}: ask again from "
        "`from + len(hashes)` for more",
        _json(ref("Hashes"), "`hashes[i]` is the hash of round `from + i` (none when to < from)"),
        {"400": "a parameter is not a number, or not `from` or `to`"},
        parameters=HASHES_PARAMETERS,
    ),
    "/account/{account}": _get(
        "an account: balance, nonce, delegate, transactions queued",
        _json(ref("Account"), "the account after the tip"),
        {"400": "neither a key nor an id", "404": "no such account"},
        parameters=[ACCOUNT_PARAMETER],
    ),
    "/metrics": _get(
        "the node's metrics in the Prometheus text format 0.0.4",
        {
            "description": "metric families, `echorand_` prefix",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        {},
    ),
    "/forks": _get(
        "fork evidence: pairs of valid certificates for different blocks of one round",
        _json(ref("Forks"), "oldest first"),
        {},
    ),
    "/openapi.json": _get(
        "this document",
        {
            "description": "OpenAPI 3.1",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        {},
    ),
    "/tx": {
        "post": {
            "summary": "submit transactions to the mempool (relayed to peers once admitted)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"},
                        "description": f"{TX_SIZE}-byte encodings back to back, at most "
                        f"{MAX_BATCH_TXS}",
                    },
                    "application/json": {"schema": ref("TxHex")},
                },
            },
            "responses": {
                "200": _json(ref("TxResults"), "every transaction was admitted"),
                "400": {
                    "description": "a malformed body (`Error`), or some transactions refused: "
                    "each result gives the reason; the admitted ones are queued all the same",
                    "content": {
                        "application/json": {"schema": {"oneOf": [ref("TxResults"), ref("Error")]}}
                    },
                },
                "413": _error("the body is larger than a batch"),
                "429": {
                    "description": "busy: the mempool holds `[mempool] backlog_seconds` of the "
                    "admission pace, or the pace has no room yet for the request's length "
                    "(beside the other clients' shares, if this one used more than its own); "
                    "nothing was read. Retry "
                    "after the `Retry-After` header's seconds (`retry_after_ms` is finer)",
                    "headers": {
                        "Retry-After": {
                            "description": "whole seconds to wait before submitting again",
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    },
                    "content": {"application/json": {"schema": ref("Busy")}},
                },
            },
        }
    },
}


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "echorand node API",
            "version": __version__,
            "description": "The HTTP API of one echorand node. Every refusal is a 4xx answer "
            'with a JSON body {"error": reason} (a refused transaction: its result\'s error).',
        },
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }


BEGIN = "<!-- openapi.json: `python -m echorand.node.openapi docs/api.md` rewrites this block -->"
END = "<!-- end of openapi.json -->"


def document_text() -> str:
    return orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2).decode()


def markdown_block(text: str) -> str:
    """The document as docs/api.md holds it, between BEGIN and END."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip().removeprefix("```json").removesuffix("```").strip()


def rewrite_markdown(path: str) -> None:
    """Put the current document into the markdown file's block."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    block = f"\n\n```json\n{document_text()}\n```\n\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[:start] + block + text[end:])


if __name__ == "__main__":
    if len(sys.argv) > 1:
        rewrite_markdown(sys.argv[1])
    else:
        sys.stdout.write(document_text() + "\n")
