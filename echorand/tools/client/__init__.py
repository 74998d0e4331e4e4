"""The node's API from the outside: a typed HTTP client (`http`) and the client commands
(`commands`: `echorand status`, `account`, `block`, `send`, `delegate`, `watch`)."""

from echorand.tools.client.http import (
    DEFAULT_NODE,
    Account,
    Block,
    NodeBusy,
    NodeClient,
    NodeError,
    NodeUnreachable,
    Status,
    SubmitResult,
    default_node_url,
    http_json,
)

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
    "default_node_url",
    "http_json",
]
