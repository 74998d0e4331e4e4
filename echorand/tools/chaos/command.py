"""`echorand chaos`: N real nodes on their own network hosts under a seeded nemesis, a client
that records every request, and the checker's verdict at the end.

A run: clean what dead runs left behind; make the hosts (`hosts`), write the genesis and
the nodes' configurations and mount their disks (`cluster`); start the nodes and wait until
all joined consensus; then for `duration` seconds the client offers its load and the
nemesis carries out the schedule; after the last heal the client stops offering new
transactions and resubmits what is not committed (`drain`), and the nodes are given time
to converge; their statuses are read, they are stopped, and their ledgers read from disk.
The checker's verdict and the figures are printed (`--json`: one object), the timeline
plotted (`--plot`). The exit status is 0 when the checker found nothing, 1 when it found a
violation, 2 for bad options, 3 when the hosts cannot be made (the message says why) and 4
when the run failed before the checker could judge it (a node that never became ready).
The run directory (`history.json`, `ledgers.json`, `summary.json`, each node's log and a copy
of its LMDB ledger, `node-<k>/ledger`) is kept with `--dir`, or when the checker found a
violation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echorand.protocol.params import Params
from echorand.tools.chaos import hosts as hostlib
from echorand.tools.chaos.checker import Verdict, check
from echorand.tools.chaos.client import Client, ClientOptions, monotonic_clock
from echorand.tools.chaos.cluster import ChaosNet
from echorand.tools.chaos.history import History, NodeLedger
from echorand.tools.chaos.nemesis import KINDS, Fault, Nemesis, schedule
from echorand.tools.devnet import DEVNET_PARAMS, TransferSigner

EXIT_VIOLATION = 1
EXIT_USAGE = 2
EXIT_NO_HOSTS = 3
EXIT_FAILED = 4
TEMP_PREFIX = "echorand-chaos-"
"""Temporary run directories are `TEMP_PREFIX<harness pid>-...` in the temporary directory."""
KEY_SEED = "chaos"
"""The text the genesis accounts' keys derive from."""
SUPERVISE_EVERY = 0.2


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    nodes: int = 5
    duration: float = 120.0
    """Seconds of load and faults."""
    nemesis: tuple[str, ...] = KINDS
    seed: int = 1
    client: ClientOptions = field(default_factory=ClientOptions)
    accounts: int = 40
    disk_mb: int = 64
    drain: float = 60.0
    """Seconds after the last heal for the client to get what it had acknowledged committed."""
    converge: float = 60.0
    """Seconds after the drain for every node to commit past the highest tip of the final
    heal: the recovery the checker asks of each node after each heal, given time to show
    after the last one too (a run once ended 7 s after the final heal, as soon as the
    drain was done, before a node healed then had committed)."""
    ready_timeout: float = 120.0
    block_txs: int = 1000
    params: Params = DEVNET_PARAMS
    directory: Path | None = None
    plot: Path | None = None


@dataclass(slots=True)
class ChaosResult:
    verdict: Verdict
    history: History
    ledgers: list[NodeLedger]
    faults: list[Fault]
    directory: Path


class HostsUnavailable(RuntimeError):
    """The machine cannot make the run's hosts (why is the message)."""


# --- the run -----------------------------------------------------------------------------


async def _supervise(
    net: ChaosNet, history: History, clock: Callable[[], float], say: Callable[[str], None]
) -> None:
    while True:
        for e in net.supervise(clock()):
            history.exits.append(e)
            what = "stopped on a full disk" if e.disk_full else "exited"
            say(f"{e.t:7.1f} s  node {e.node} {what} (status {e.code}); restarting it")
        await asyncio.sleep(SUPERVISE_EVERY)


async def _nemesis(
    nemesis: Nemesis, faults: list[Fault], clock: Callable[[], float], say: Callable[[str], None]
) -> None:
    for fault in faults:
        await asyncio.sleep(max(0.0, fault.start - clock()))
        await asyncio.to_thread(nemesis.start, fault)
        say(f"{clock():7.1f} s  {fault.kind}: {fault.describe()} for {fault.duration:.1f} s")
        await asyncio.sleep(max(0.0, fault.end - clock()))
        await asyncio.to_thread(nemesis.heal, fault)
        say(f"{clock():7.1f} s  healed {fault.kind}")


async def _converge(client: Client, target: int, until: float) -> bool:
    """Wait until every node answers with a tip of at least `target`; False at `until`."""
    while client.clock() < until:
        await client.look()
        tips = [s["tip"]["round"] if s is not None else -1 for s in client.statuses]
        if min(tips) >= target:
            return True
        await asyncio.sleep(0.5)
    return False


async def _drive(
    net: ChaosNet,
    options: ChaosOptions,
    faults: list[Fault],
    history: History,
    say: Callable[[str], None],
) -> tuple[list[dict[str, Any] | None], list[int | None]]:
    """The load, the nemesis, the drain and the convergence; the nodes' last statuses and
    fork evidence."""
    clock, history.wall_start = monotonic_clock()
    signer = TransferSigner(KEY_SEED, options.accounts, net.genesis_hash)
    history.lanes = [signer.public_keys[i].hex() for i in range(options.client.lanes)]
    nemesis = Nemesis(net, history, clock)
    loop = asyncio.get_running_loop()
    async with Client(net, signer, history, clock, options.client, options.seed) as client:
        stop = asyncio.Event()
        background = [
            loop.create_task(client.monitor(stop)),
            loop.create_task(_supervise(net, history, clock, say)),
        ]
        lanes = loop.create_task(client.run_lanes())
        try:
            await _nemesis(nemesis, faults, clock, say)
            await asyncio.sleep(max(0.0, options.duration - clock()))
            client.load = False
            history.load_end = clock()
            await client.look()
            history.final_heal = clock()
            history.caught_up_round = client.highest_tip()
            client.drain_until = clock() + options.drain
            say(f"{clock():7.1f} s  load over, all healed at round {history.caught_up_round}")
            await lanes
            drained = all(lane.settled for lane in client.lanes)
            past = history.caught_up_round + 1
            caught_up = await _converge(client, past, clock() + options.converge)
            say(
                f"{clock():7.1f} s  {'drained' if drained else 'drain timed out'},"
                f" {'every node caught up' if caught_up else 'not every node caught up'}"
            )
            await client.probe_commits()
            statuses = list(client.statuses)
            history.final_status = [_status_brief(doc) for doc in statuses]
            forks = [await client.fork_evidence(k) for k in range(net.nodes)]
        finally:
            stop.set()
            for task in [*background, lanes]:
                task.cancel()
            await asyncio.gather(*background, lanes, return_exceptions=True)
        history.end = clock()
    return statuses, forks


def _status_brief(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    keep = ("round", "step", "final_round", "peers")
    return {"tip": doc["tip"]["round"], **{k: doc[k] for k in keep if k in doc}}


def _write_json(path: Path, doc: object) -> None:
    path.write_text(json.dumps(doc), encoding="utf-8")


def run_chaos(options: ChaosOptions, say: Callable[[str], None]) -> ChaosResult:
    """One run; the hosts, processes and mounts are gone when it returns or raises."""
    reason = hostlib.preflight(tc="slow" in options.nemesis)
    if reason is not None:
        raise HostsUnavailable(reason)
    for what in clean_leftovers():
        say(f"removed a leftover of a dead run: {what}")
    faults = schedule(options.seed, options.nemesis, options.duration, options.nodes)
    temporary = options.directory is None
    directory = options.directory or Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
    directory.mkdir(parents=True, exist_ok=True)
    hosts = hostlib.Hosts(options.nodes)
    net = ChaosNet(
        directory,
        hosts,
        accounts=options.accounts,
        seed=KEY_SEED,
        params=options.params,
        disk_bytes=options.disk_mb << 20,
        block_txs=options.block_txs,
    )
    history = History(seed=options.seed, nodes=options.nodes)
    done = False
    try:
        hosts.create()
        net.create()
        last = hosts.address(options.nodes - 1)
        say(f"{options.nodes} hosts {hosts.address(0)}..{last}; run directory {directory}")
        with hosts.entered():
            net.start()
            net.wait_ready(options.ready_timeout)
            say(f"nodes ready; {len(faults)} faults in {options.duration:g} s, seed {options.seed}")
            statuses, forks = asyncio.run(_drive(net, options, faults, history, say))
        net.stop()
        ledgers = [net.read_ledger(k, statuses[k], forks[k]) for k in range(options.nodes)]
        net.keep_ledgers()
        done = True
    finally:
        net.stop()
        hosts.destroy()
        if temporary and not done:
            shutil.rmtree(directory, ignore_errors=True)
    verdict = check(history, ledgers)
    _write_json(directory / "history.json", history.to_json())
    _write_json(directory / "ledgers.json", [ledger.to_json() for ledger in ledgers])
    return ChaosResult(verdict, history, ledgers, faults, directory)


def clean_leftovers() -> list[str]:
    """Remove what runs whose harness died left: their processes, namespaces and tmpfs
    (`hosts.clean`), and their temporary run directories."""
    removed = hostlib.clean()
    mounts = Path("/proc/mounts").read_text()
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        owner = path.name.removeprefix(TEMP_PREFIX).split("-")[0]
        if owner.isdigit() and not hostlib.owner_alive(int(owner)) and f" {path}/" not in mounts:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"directory {path}")
    return removed


def _fault_json(f: Fault) -> dict[str, Any]:
    return {"kind": f.kind, "start": round(f.start, 3), "seconds": round(f.duration, 3),
            "what": f.describe()}  # fmt: skip


def summarise(result: ChaosResult, options: ChaosOptions) -> dict[str, Any]:
    """The report's JSON object."""
    return {
        "valid": result.verdict.valid,
        "violations": list(result.verdict.violations),
        "seed": options.seed,
        "nodes": options.nodes,
        "duration": options.duration,
        "nemesis": list(options.nemesis),
        "schedule": [_fault_json(f) for f in result.faults],
        "link_emulation": hostlib.LINK_EMULATION,
        **result.verdict.figures,
        "directory": str(result.directory),
    }


# --- the command -------------------------------------------------------------------------


def add_chaos_arguments(parser: argparse.ArgumentParser) -> None:
    d = ChaosOptions()
    c = d.client
    parser.add_argument("--nodes", type=int, default=d.nodes, help="node processes (hosts)")
    parser.add_argument("--duration", type=float, default=d.duration, help="seconds of faults")
    parser.add_argument(
        "--nemesis",
        default=",".join(d.nemesis),
        help=f"comma-separated fault kinds, of {','.join(KINDS)}",
    )
    parser.add_argument("--seed", type=int, default=None, help="the schedule's seed")
    parser.add_argument("--rate", type=float, default=c.rate, help="client requests per second")
    parser.add_argument("--lanes", type=int, default=c.lanes, help="client lanes (senders)")
    parser.add_argument("--disk-mb", type=int, default=d.disk_mb, help="each node's tmpfs")
    parser.add_argument("--drain", type=float, default=d.drain, help="seconds to drain")
    parser.add_argument("--dir", type=Path, default=None, help="keep the run directory here")
    parser.add_argument("--plot", type=Path, default=None, help="write the timeline PNG here")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--cleanup", action="store_true", help="only remove what dead runs left behind"
    )
    parser.add_argument(
        "--recheck",
        type=Path,
        default=None,
        metavar="DIR",
        help="only run the checker again on a kept run directory (history.json, ledgers.json)",
    )


def options_from_args(args: argparse.Namespace) -> ChaosOptions:
    kinds = tuple(k.strip() for k in args.nemesis.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"--nemesis: unknown kind {unknown[0]!r} (choose from {','.join(KINDS)})")
    if not 2 <= args.nodes <= hostlib.MAX_NODES:
        raise ValueError(f"--nodes must be in 2..{hostlib.MAX_NODES}")
    if args.duration <= 0 or args.rate <= 0 or args.lanes < 1 or args.disk_mb < 1:
        raise ValueError("--duration, --rate, --lanes and --disk-mb must be positive")
    d = ChaosOptions()
    accounts = max(d.accounts, args.lanes + 1, args.nodes)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    return ChaosOptions(
        nodes=args.nodes,
        duration=args.duration,
        nemesis=tuple(dict.fromkeys(kinds)),
        seed=seed,
        client=ClientOptions(lanes=args.lanes, rate=args.rate),
        accounts=accounts,
        disk_mb=args.disk_mb,
        drain=args.drain,
        directory=args.dir,
        plot=args.plot,
    )


def _sayer(stream: Any) -> Callable[[str], None]:
    """Progress lines, flushed at once (the run is long, and often logged to a file)."""

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    return say


def _run(args: argparse.Namespace) -> int:
    say = _sayer(sys.stderr if args.json else sys.stdout)
    if args.cleanup:
        removed = clean_leftovers()
        for what in removed:
            say(f"removed {what}")
        say(f"echorand chaos: {len(removed)} leftover(s) removed")
        return 0
    try:
        options = options_from_args(args)
    except ValueError as e:
        print(f"echorand chaos: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.recheck is not None:
        return _recheck(args, args.recheck)
    try:
        result = run_chaos(options, say)
    except HostsUnavailable as e:
        print(f"echorand chaos: cannot make the hosts: {e}", file=sys.stderr)
        return EXIT_NO_HOSTS
    except hostlib.HostsError as e:
        print(f"echorand chaos: setting up the hosts failed: {e}", file=sys.stderr)
        return EXIT_NO_HOSTS
    except (RuntimeError, TimeoutError, OSError) as e:
        print(f"echorand chaos: the run failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    summary = summarise(result, options)
    _write_json(result.directory / "summary.json", summary)
    _report(args, result.history, summary, options.plot)
    if result.verdict.valid and options.directory is None:
        shutil.rmtree(result.directory, ignore_errors=True)
    elif not result.verdict.valid:
        say(f"echorand chaos: the run is kept in {result.directory}")
    return 0 if result.verdict.valid else EXIT_VIOLATION


def load_run(directory: Path) -> tuple[History, list[NodeLedger], dict[str, Any]]:
    """The history, the ledgers and the summary a run kept in `directory`."""
    history = History.from_json(json.loads((directory / "history.json").read_text()))
    ledgers = [
        NodeLedger.from_json(doc) for doc in json.loads((directory / "ledgers.json").read_text())
    ]
    summary = json.loads((directory / "summary.json").read_text())
    return history, ledgers, summary


def _recheck(args: argparse.Namespace, directory: Path) -> int:
    """The checker again, on what a run kept: the same report, from the stored files."""
    try:
        history, ledgers, summary = load_run(directory)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"echorand chaos: --recheck {directory}: {e}", file=sys.stderr)
        return EXIT_USAGE
    verdict = check(history, ledgers)
    summary = {
        **summary,
        **verdict.figures,
        "valid": verdict.valid,
        "violations": list(verdict.violations),
    }
    _report(args, history, summary, args.plot)
    return 0 if verdict.valid else EXIT_VIOLATION


def _report(
    args: argparse.Namespace, history: History, summary: dict[str, Any], plot_path: Path | None
) -> None:
    if plot_path is not None:
        from echorand.tools.chaos.report import plot

        title = (
            f"echorand chaos: {summary['nodes']} nodes, {summary['duration']:g} s,"
            f" nemesis {','.join(summary['nemesis'])}, seed {summary['seed']}"
        )
        plot(history, plot_path, title)
    if args.json:
        print(json.dumps(summary))
    else:
        from echorand.tools.chaos.report import print_report

        print_report(summary)


def main_chaos(args: argparse.Namespace) -> int:
    """`echorand chaos`. SIGTERM behaves like Ctrl-C: everything is cleaned up on the way out."""

    def interrupt(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("echorand chaos: interrupted; nodes, hosts and disks removed", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(Exception):
            sys.stderr.flush()
