"""`echorand sim consensus`: run the simulator from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from echorand.protocol.params import PROPOSER_POLICIES, SEED_MODES
from echorand.sim.adversary import ADVERSARIES
from echorand.sim.byzantine import BEHAVIOURS
from echorand.sim.simulation import SimConfig, SimResult, run


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _partition(text: str) -> tuple[float, int, int]:
    """FRACTION:START_MS:END_MS, or START_MS:END_MS for two halves."""
    parts = text.split(":")
    try:
        if len(parts) == 2:
            fraction, start, end = 0.5, int(parts[0]), int(parts[1])
        elif len(parts) == 3:
            fraction, start, end = float(parts[0]), int(parts[1]), int(parts[2])
        else:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected [FRACTION:]START_MS:END_MS, got {text!r}"
        ) from None
    if not 0 < fraction < 1 or not 0 <= start < end:
        raise argparse.ArgumentTypeError(f"need 0 < FRACTION < 1 and START < END, got {text!r}")
    return fraction, start, end


def _crash(text: str) -> tuple[int, int, int | None]:
    """NODE:AT_MS[:RESTART_MS]."""
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        restart = int(parts[2]) if len(parts) == 3 else None
        return int(parts[0]), int(parts[1]), restart
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NODE:AT_MS[:RESTART_MS], got {text!r}"
        ) from None


def add_consensus_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `echorand sim consensus`."""
    d = SimConfig()
    add = parser.add_argument
    add("--nodes", type=_positive, default=d.nodes, help="nodes (default %(default)s)")
    add(
        "--accounts",
        type=_positive,
        default=d.accounts,
        help="accounts per node (default %(default)s)",
    )
    add("--rounds", type=_positive, default=d.rounds, help="rounds to commit (default %(default)s)")
    add(
        "--seed",
        type=int,
        default=d.seed,
        help="the run's seed: same seed, same run (default %(default)s)",
    )
    add(
        "--byzantine",
        type=_fraction,
        default=d.byzantine,
        help="fraction of stake held by Byzantine nodes",
    )
    add("--behaviour", choices=BEHAVIOURS[1:], default=d.behaviour, help="what Byzantine nodes do")
    add("--participation", type=_fraction, default=d.participation, help="fraction of stake online")
    add(
        "--offline",
        choices=("nodes", "accounts"),
        default=d.offline,
        help="what --participation takes offline: whole nodes, or accounts (every node stays "
        "up and acts for its online accounts) (default %(default)s)",
    )
    add(
        "--latency-ms",
        type=_positive,
        default=d.latency_ms,
        help="mean link latency (default %(default)s)",
    )
    add("--loss", type=_fraction, default=d.loss, help="probability that a message is lost")
    add(
        "--partition",
        type=_partition,
        default=None,
        help="[FRACTION:]START_MS:END_MS: cut the network in two",
    )
    add(
        "--crash",
        type=_crash,
        action="append",
        default=[],
        help="NODE:AT_MS[:RESTART_MS] (repeatable)",
    )
    add(
        "--no-producers",
        action="store_true",
        help="no producer is online: every round should end empty",
    )
    add(
        "--slow-honest-ms",
        type=_non_negative,
        default=d.slow_honest_producers_ms,
        metavar="MS",
        help="in rounds where a Byzantine account holds a producer seat, honest producers "
        "send their step-1 messages MS late (default %(default)s)",
    )
    add(
        "--proposers",
        choices=PROPOSER_POLICIES,
        default=d.proposers,
        help="who produces in step 1: sortition by stake, or the permissioned round-robin "
        "order of PROTOCOL §7 over every account (default %(default)s)",
    )
    add(
        "--seed-mode",
        choices=SEED_MODES,
        default=d.seed_mode,
        help="the leaders' seed credential: an Ed25519 signature, or an RFC 9381 VRF proof "
        "(default %(default)s)",
    )
    add(
        "--n-c",
        type=_positive,
        default=d.n_c,
        help="N_c, verifier seats per step (default %(default)s)",
    )
    add("--n-g", type=_positive, default=d.n_g, help="N_g, producer seats (default %(default)s)")
    add("--k", type=_positive, default=d.k, help="BBA loops, mu = 4 + 3k (default %(default)s)")
    add("--lambda-ms", type=_positive, default=d.lam_ms, help="λ (default %(default)s)")
    add("--big-lambda-ms", type=_positive, default=d.big_lam_ms, help="Λ (default %(default)s)")
    add("--max-time-ms", type=_positive, default=None, help="stop after this much simulated time")
    add(
        "--adversary",
        choices=ADVERSARIES,
        default=None,
        help="an adversarial scheduler beyond the timing assumption (the Byzantine nodes act "
        "its part): split-decision makes a few honest nodes decide a block that the others, "
        "shown other messages, never see (docs/protocol.md §10)",
    )
    add(
        "--attack-round",
        type=_positive,
        default=d.attack_round,
        help="the round the adversary attacks (default %(default)s)",
    )
    add(
        "--seeds",
        type=_positive,
        default=1,
        help="a sweep: run seeds SEED .. SEED + N - 1, one row each (default %(default)s)",
    )
    add(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help="run the sweep's runs on this Dask distributed cluster (tcp://host:8786): the "
        "same results for the same seeds",
    )
    add("--json", action="store_true", help="print one JSON object instead of a table")


def config_from(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        nodes=args.nodes,
        accounts=args.accounts,
        rounds=args.rounds,
        seed=args.seed,
        byzantine=args.byzantine,
        behaviour=args.behaviour,
        participation=args.participation,
        offline=args.offline,
        latency_ms=args.latency_ms,
        loss=args.loss,
        partition=args.partition,
        crashes=tuple(args.crash),
        mute_producers=args.no_producers,
        slow_honest_producers_ms=args.slow_honest_ms,
        proposers=args.proposers,
        seed_mode=args.seed_mode,
        n_c=args.n_c,
        n_g=args.n_g,
        k=args.k,
        lam_ms=args.lambda_ms,
        big_lam_ms=args.big_lambda_ms,
        max_time_ms=args.max_time_ms,
        adversary=args.adversary,
        attack_round=args.attack_round,
    )


def violations(summary: dict[str, object]) -> list[str]:
    """What the run broke: a final fork, an unhealed fork, a halt, a bad certificate — and
    any fork at all without an adversarial scheduler (within the timing assumption no fork is
    possible, docs/protocol.md §10)."""
    out = []
    for key in ("final_forks", "unhealed", "bad_certificates"):
        if summary[key]:
            out.append(key)
    if summary["halted"]:
        out.append("halted")
    if summary["forks"] and summary["adversary"] is None:
        out.append("forks")
    return out


def run_consensus(args: argparse.Namespace) -> int:
    """Run one simulation; 0 when no fork and every certificate verified, else 1."""
    try:
        config = config_from(args)
        config.params()
    except ValueError as e:
        print(f"echorand sim consensus: {e}", file=sys.stderr)
        return 2
    if args.seeds > 1 or args.cluster is not None:
        return _run_sweep(config, args)
    if args.json:
        result = run(config)
        print(json.dumps(result.summary(), sort_keys=False))
    else:
        result = _run_with_progress(config)
        _print_table(result)
    return 1 if violations(result.summary()) else 0


def run_summary(config: SimConfig) -> dict[str, object]:
    """One run's summary (what a sweep's worker sends back)."""
    return run(config).summary()


def sweep(config: SimConfig, seeds: int, cluster: str | None = None) -> list[dict[str, object]]:
    """The summaries of seeds config.seed .. + seeds - 1, here or on a Dask cluster."""
    configs = [replace(config, seed=config.seed + i) for i in range(seeds)]
    if cluster is None:
        return [run_summary(c) for c in configs]
    from echorand.sim.cluster import run_on_cluster

    return run_on_cluster(cluster, run_summary, configs)[0]


def _run_sweep(config: SimConfig, args: argparse.Namespace) -> int:
    from echorand.sim.cluster import ClusterError

    try:
        summaries = sweep(config, args.seeds, args.cluster)
    except ClusterError as e:
        print(f"echorand sim consensus: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summaries))
    else:
        _print_sweep(summaries)
    return 1 if any(violations(s) for s in summaries) else 0


def _print_sweep(summaries: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="echorand sim consensus: one run per seed")
    columns = ("seed", "committed", "empty", "final", "forks", "healed after", "bad certs")
    for name in (*columns, "p50 ms", "p99 ms"):
        table.add_column(name, justify="right")
    for s in summaries:
        latency = s["latency_ms"]
        assert isinstance(latency, dict) and isinstance(s["forks"], list)
        table.add_row(
            str(s["seed"]),
            f"{s['committed']} of {s['rounds']}",
            str(s["empty_blocks"]),
            str(s["final_blocks"]),
            str(len(s["forks"])),
            "-" if s["converged_after_rounds"] is None else f"{s['converged_after_rounds']} rounds",
            str(len(s["bad_certificates"])),  # type: ignore[arg-type]
            str(latency["p50"]),
            str(latency["p99"]),
        )
    Console().print(table)


def _run_with_progress(config: SimConfig) -> SimResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("rounds"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("rounds", total=config.rounds)
        result = run(config, lambda done: progress.update(task, completed=min(done, config.rounds)))
    return result


def _print_table(result: SimResult) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result.summary()
    table = Table(title="echorand sim consensus", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    latency = s["latency_ms"]
    assert isinstance(latency, dict)
    rows = [
        ("nodes / accounts", f"{s['nodes']} / {s['accounts']}"),
        ("seed", str(s["seed"])),
        ("byzantine stake", f"{s['byzantine_stake']:.1%} ({s['behaviour']})"),
        ("online stake", f"{s['online_stake']:.1%} (offline: {s['offline']})"),
        ("proposers", str(s["proposers"])),
        ("seed mode", str(s["seed_mode"])),
        ("rounds committed", f"{s['committed']} of {s['rounds']}"),
        ("empty blocks", str(s["empty_blocks"])),
        ("final blocks", str(s["final_blocks"])),
        ("forks (tentative)", str(s["forks"] or "none")),
        ("final forks", str(s["final_forks"] or "none")),
        (
            "healed",
            "-"
            if not s["forks"]
            else f"after {s['converged_after_rounds']} rounds, {s['rollbacks']} rollbacks"
            + (f"; unhealed: {s['unhealed']}" if s["unhealed"] else ""),
        ),
        ("adversary", str(s["adversary"] or "none")),
        ("round time p50 / p99", f"{latency['p50']} ms / {latency['p99']} ms"),
        ("messages (lost)", f"{s['messages']} ({s['lost']})"),
        ("simulated time", f"{s['sim_time_ms']} ms"),
        (
            "certificates checked",
            f"{s['certificates_checked']}, {len(result.bad_certificates)} bad",
        ),
        ("dropped", ", ".join(f"{k}: {v}" for k, v in result.dropped.items()) or "none"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)
