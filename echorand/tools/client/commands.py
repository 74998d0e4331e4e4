"""The client commands: `echorand status`, `account`, `block`, `send`, `delegate`, `watch`.

Each talks to one node's API (`--node URL`, default `$ECHORAND_NODE` or
http://127.0.0.1:8000), prints a table (rich) or with `--json` one JSON object, and exits
non-zero with one line naming the node's reason when the node refuses or cannot be reached
(75 when it stays busy: its `Retry-After` is honoured a few times first).
`send` and `delegate` sign locally with a key pair file (`echorand keys`) for the node's
genesis; `--wait` follows the transaction to its block and says whether the node holds
that block final or only tentative (final only when the node says so).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from echorand.tools.client.http import (
    Block,
    NodeBusy,
    NodeClient,
    NodeError,
    NodeUnreachable,
    Status,
    default_node_url,
)
from echorand.wire.crypto import Keypair
from echorand.wire.transactions import Transaction, delegation, transfer

__all__ = ["COMMANDS", "add_client_commands"]

WAIT_POLL = 0.2
EXIT_BUSY = 75
"""The exit status when the node stayed busy (429) after the client's retries (EX_TEMPFAIL)."""


class CommandError(Exception):
    """A client command that cannot go on: the one line to print."""


def _node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--node",
        default=None,
        metavar="URL",
        help="the node's API (default: $ECHORAND_NODE, else http://127.0.0.1:8000)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _client(args: argparse.Namespace) -> NodeClient:
    return NodeClient(args.node or default_node_url())


def _print_json(doc: object) -> None:
    sys.stdout.write(orjson.dumps(doc).decode() + "\n")


def _table(title: str, rows: list[tuple[str, object]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    for name, value in rows:
        table.add_row(name, "-" if value is None else str(value))
    return table


def _show(args: argparse.Namespace, doc: object, table: Callable[[], Table]) -> None:
    if args.json:
        _print_json(doc)
    else:
        Console().print(table())


# --- status, account, block ------------------------------------------------------------


def status_rows(s: Status) -> list[tuple[str, object]]:
    sync, pool, supply = s["sync"], s["mempool"], s["supply"]
    rows: list[tuple[str, object]] = [
        ("genesis", s["genesis"]),
        ("round / step", f"{s['round']} / {s['step']}" if s["sync"]["joined"] else "not joined"),
        ("tip", f"{s['tip']['round']} ({s['tip']['hash'][:16]}..)"),
    ]
    if "final_round" in s:
        rows.append(("final round", s["final_round"]))
    rows += [
        ("peers", s["peers"]),
        ("mempool", f"{pool['count']:,} transactions, {pool['bytes']:,} bytes"),
        ("sync", f"caught up: {sync['caught_up']}, synced blocks: {sync['synced_blocks']}"),
        ("local accounts", s["accounts"]),
        ("supply", f"{supply['total']:,} (minted {supply['minted']:,})"),
        ("uptime", f"{s['uptime_s']:.0f} s"),
    ]
    return rows


def run_status(args: argparse.Namespace) -> int:
    doc = _client(args).status()
    _show(args, doc, lambda: _table(f"node {_client(args).url}", status_rows(doc)))
    return 0


def run_account(args: argparse.Namespace) -> int:
    doc = _client(args).account(args.account)
    rows: list[tuple[str, object]] = [
        ("id", doc["id"]),
        ("public key", doc["public_key"]),
        ("balance", f"{doc['balance']:,}"),
        ("nonce", doc["nonce"]),
        ("delegate", doc["delegate"]),
        ("queued transactions", doc["queued"]),
    ]
    _show(args, doc, lambda: _table(f"account {doc['id']}", rows))
    return 0


def finality(block: Block) -> str:
    """`final` only when the node says so (`"final": true`), else `tentative`."""
    return "final" if block.get("final") is True else "tentative"


def block_rows(b: Block) -> list[tuple[str, object]]:
    cert = b["certificate"]
    carried = b["prev_cert"]
    committed = b["committed_at_ms"]
    return [
        ("round", b["round"]),
        ("status", finality(b)),
        ("hash", b["hash"]),
        ("prev hash", b["prev_hash"]),
        ("producer", "empty block" if b["empty"] else b["producer"]),
        ("transactions", b["tx_count"]),
        ("certificate", f"step {cert['step']}, b = {cert['b']}, {cert['votes']} votes"),
        (
            "carries CERT_{r-1}",
            None if carried is None else f"step {carried['step']}, {carried['votes']} votes",
        ),
        (
            "committed here at",
            None
            if committed is None
            else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(committed / 1000)),
        ),
    ]


def run_block(args: argparse.Namespace) -> int:
    doc = _client(args).block(args.round)
    _show(args, doc, lambda: _table(f"block {doc['round']}", block_rows(doc)))
    return 0


# --- send, delegate ----------------------------------------------------------------------


def _keypair(args: argparse.Namespace) -> Keypair:
    from echorand.node.launch import passphrase_from_args
    from echorand.wire.keys import KeyFileError, load_keypair
    from echorand.wire.seal import PassphraseError

    try:
        return load_keypair(args.key_file, passphrase=passphrase_from_args(args))
    except (KeyFileError, PassphraseError) as e:
        raise CommandError(str(e)) from None


def _public_key(client: NodeClient, text: str) -> bytes:
    """A recipient: a 64-hex-digit key as it is, an id looked up on the node."""
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise CommandError(f"--to {text!r}: not a key (64 hex digits) nor an id") from None
    if not text.isascii() or not text.isdigit():
        raise CommandError(f"--to {text!r}: not a key (64 hex digits) nor an id")
    return bytes.fromhex(client.account(text)["public_key"])


def _next_nonce(client: NodeClient, keypair: Keypair) -> int:
    try:
        account = client.account(keypair.public_key.hex())
    except NodeError as e:
        if e.status == 404:
            raise CommandError(
                f"{keypair.public_key.hex()}: no such account on the node (fund it first)"
            ) from None
        raise
    return account["nonce"] + account["queued"]


def _submit(args: argparse.Namespace, client: NodeClient, tx: Transaction, what: str) -> int:
    """Submit, print the outcome, and with --wait follow it to its block."""
    tip = client.status()["tip"]["round"]
    result = client.submit([tx])
    (item,) = result["results"]
    doc: dict[str, Any] = {"id": tx.id.hex(), "nonce": tx.nonce, "accepted": item["accepted"]}
    if not item["accepted"]:
        doc["error"] = item.get("error")
        if args.json:
            _print_json(doc)
        else:
            print(
                f"echorand {what}: the node refused {tx.id.hex()}: {doc['error']}", file=sys.stderr
            )
        return 1
    if args.wait:
        block = wait_for_transaction(client, tx.id.hex(), tip + 1, args.timeout)
        doc.update(round=block["round"], finality=finality(block))
    if args.json:
        _print_json(doc)
    else:
        print(f"{what} {tx.id.hex()} accepted (nonce {tx.nonce})")
        if args.wait:
            print(f"in block {doc['round']}: {doc['finality']}")
    return 0


def wait_for_transaction(client: NodeClient, tx_id: str, first: int, timeout: float) -> Block:
    """The block that carries `tx_id`, read block by block from round `first`."""
    deadline = time.monotonic() + timeout
    r = first
    while True:
        if client.status()["tip"]["round"] >= r:
            block = client.block(r)
            if tx_id in block["tx_ids"]:
                return block
            r += 1
            continue
        if time.monotonic() > deadline:
            raise CommandError(f"{tx_id}: in no block after {timeout:g} s (last read: {r - 1})")
        time.sleep(WAIT_POLL)


def run_send(args: argparse.Namespace) -> int:
    if args.amount < 1 or args.fee < 0:
        raise CommandError("--amount must be at least 1 and --fee not negative")
    client = _client(args)
    keypair = _keypair(args)
    recipient = _public_key(client, args.to)
    chain = bytes.fromhex(client.status()["genesis"])
    nonce = _next_nonce(client, keypair)
    tx = transfer(keypair, recipient, args.amount, fee=args.fee, nonce=nonce, chain=chain)
    return _submit(args, client, tx, "transfer")


def run_delegate(args: argparse.Namespace) -> int:
    if args.fee < 0:
        raise CommandError("--fee must not be negative")
    client = _client(args)
    keypair = _keypair(args)
    to = _public_key(client, args.to)
    chain = bytes.fromhex(client.status()["genesis"])
    nonce = _next_nonce(client, keypair)
    tx = delegation(keypair, to, fee=args.fee, nonce=nonce, chain=chain)
    return _submit(args, client, tx, "delegation")


# --- watch -------------------------------------------------------------------------------


def metric_values(text: str) -> dict[str, float]:
    """The samples of a Prometheus text exposition, by their full name with labels."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                continue
    return out


class Watch:
    """Successive readings of one node: rates over the last interval."""

    def __init__(self, client: NodeClient) -> None:
        self.client = client
        self.last: tuple[float, int, dict[str, float]] | None = None

    def read(self) -> dict[str, Any]:
        status = self.client.status()
        metrics = metric_values(self.client.metrics_text())
        now = time.monotonic()
        tip = status["tip"]["round"]
        row: dict[str, Any] = {
            "round": status["round"],
            "step": status["step"],
            "tip": tip,
            "final_round": status.get("final_round"),
            "peers": status["peers"],
            "mempool": status["mempool"]["count"],
            "blocks_per_s": None,
            "tx_per_s": None,
            "finality_s": None,
        }
        if self.last is not None:
            then, tip_before, before = self.last
            dt = max(now - then, 1e-6)
            row["blocks_per_s"] = round((tip - tip_before) / dt, 2)
            txs = "echorand_transactions_committed_total"
            row["tx_per_s"] = round((metrics.get(txs, 0) - before.get(txs, 0)) / dt, 1)
            name = "echorand_transaction_finality_seconds"
            count = metrics.get(f"{name}_count", 0) - before.get(f"{name}_count", 0)
            total = metrics.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)
            row["finality_s"] = round(total / count, 3) if count else None
        self.last = (now, tip, metrics)
        return row


WATCH_COLUMNS = (
    ("round", "round"),
    ("step", "step"),
    ("tip", "tip"),
    ("final", "final_round"),
    ("peers", "peers"),
    ("mempool", "mempool"),
    ("blocks/s", "blocks_per_s"),
    ("tx/s", "tx_per_s"),
    ("finality s", "finality_s"),
)


def watch_table(url: str, row: dict[str, Any]) -> Table:
    table = Table(title=f"echorand watch {url} (Ctrl-C to leave)")
    for name, _ in WATCH_COLUMNS:
        table.add_column(name, justify="right")
    table.add_row(*("-" if row[key] is None else str(row[key]) for _, key in WATCH_COLUMNS))
    return table


def readings(watch: Watch, interval: float, count: int | None) -> Iterator[dict[str, Any]]:
    n = 0
    while count is None or n < count:
        if n:
            time.sleep(interval)
        yield watch.read()
        n += 1


def run_watch(args: argparse.Namespace) -> int:
    client = _client(args)
    watch = Watch(client)
    try:
        if args.json:
            for row in readings(watch, args.interval, args.count):
                _print_json(row)
                sys.stdout.flush()
            return 0
        from rich.live import Live

        with Live(auto_refresh=False, transient=False) as live:
            for row in readings(watch, args.interval, args.count):
                live.update(watch_table(client.url, row), refresh=True)
    except KeyboardInterrupt:
        return 0
    return 0


# --- wiring ------------------------------------------------------------------------------


def _add_send_options(p: argparse.ArgumentParser) -> None:
    from echorand.node.launch import add_passphrase_arguments

    p.add_argument(
        "--from", dest="key_file", required=True, metavar="KEYFILE", help="the sender's key file"
    )
    p.add_argument("--fee", type=int, default=0, help="fee paid to the block's producer")
    p.add_argument("--wait", action="store_true", help="follow it to its block")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits at most")
    add_passphrase_arguments(p)


def _no_options(p: argparse.ArgumentParser) -> None:
    """`status` takes only --node and --json."""


def _add_account(p: argparse.ArgumentParser) -> None:
    p.add_argument("account", metavar="KEY|ID", help="a public key (64 hex digits) or an id")


def _add_block(p: argparse.ArgumentParser) -> None:
    p.add_argument("round", metavar="ROUND|latest", help="a committed round, or latest")


def _add_send(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", required=True, metavar="KEY|ID", help="the recipient")
    p.add_argument("--amount", type=int, required=True, help="units to transfer")
    _add_send_options(p)


def _add_delegate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--to", required=True, metavar="KEY|ID", help="the delegate (your own key: none)"
    )
    _add_send_options(p)


def _add_watch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    p.add_argument("--count", type=int, default=None, help="stop after this many readings")


Runner = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = {
    "status": ("a node's round, step, tip, peers, mempool, sync, supply", _no_options, run_status),
    "account": ("an account: balance, nonce, delegate", _add_account, run_account),
    "block": ("a committed block and its certificate", _add_block, run_block),
    "send": ("sign a transfer locally and submit it", _add_send, run_send),
    "delegate": ("sign a delegation locally and submit it", _add_delegate, run_delegate),
    "watch": (
        "a live view: round, step, peers, mempool, blocks/s, finality",
        _add_watch,
        run_watch,
    ),
}


def _guarded(name: str, run: Runner) -> Runner:
    """The command with the node's refusals and unreachable nodes as one line, exit 1."""

    def command(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except NodeBusy as e:
            print(
                f"echorand {name}: the node is busy (429, waited as it asked, still busy):"
                f" {e.reason}; try again in {e.retry_after:g} s",
                file=sys.stderr,
            )
            return EXIT_BUSY
        except NodeError as e:
            print(f"echorand {name}: the node answered {e.status}: {e.reason}", file=sys.stderr)
        except NodeUnreachable as e:
            print(f"echorand {name}: cannot reach the node: {e}", file=sys.stderr)
        except CommandError as e:
            print(f"echorand {name}: {e}", file=sys.stderr)
        return 1

    return command


def add_client_commands(sub: argparse._SubParsersAction) -> None:
    """`echorand status|account|block|send|delegate|watch`."""
    for name, (help_text, add_options, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_options(p)
        _node_options(p)
        p.set_defaults(func=_guarded(name, run))
