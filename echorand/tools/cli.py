"""The `echorand` command line."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from echorand import __version__

if TYPE_CHECKING:
    from echorand.tools.studies.grinding import GrindingResult
    from echorand.tools.studies.leader import LeaderResult
    from echorand.tools.studies.participation import SweepResult

BenchOptions = Callable[[argparse.ArgumentParser], None]


def _verify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, nargs="+", default=[64, 1024], help="batch sizes")
    p.add_argument(
        "--differential",
        type=int,
        default=0,
        metavar="N",
        help="also check the AVX-512 IFMA lane verifier against ed25519-zebra on N generated "
        "signatures (valid, corrupted, ZIP 215 edge cases); 1000000 takes minutes",
    )


def _sortition_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accounts", type=int, default=1_000_000, help="accounts in the ledger")
    p.add_argument("--seats", type=int, default=1000, help="committee seats to draw")
    p.add_argument("--updates", type=int, default=10_000, help="balance updates to apply")


def _chain_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=100_000, help="hashes in the chain")


def _codec_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--txs", type=int, default=10_000, help="transactions in the block")
    p.add_argument("--votes", type=int, default=10_000, help="bba_signature votes")


def _leader_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--validators", type=int, default=16, help="validators N")
    p.add_argument("--blocks", type=int, default=10_000_000, help="blocks in the native run")
    p.add_argument("--baseline-blocks", type=int, default=20_000, help="blocks in the Python run")


def _ledger_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accounts", type=int, default=100_000, help="accounts in the devnet")
    p.add_argument("--transactions", type=int, default=10_000, help="transactions in the block")
    p.add_argument("--keys", type=int, default=10_000, help="public keys to derive")


def _network_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--votes", type=int, default=20_000, help="bba_signature frames to send")
    p.add_argument("--blocks", type=int, default=10, help="gc_block frames to send")
    p.add_argument("--block-txs", type=int, default=10_000, help="transactions per block")


def _devnet_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=4, help="node processes")
    p.add_argument(
        "--accounts",
        type=int,
        nargs="+",
        default=[400],
        help="genesis accounts; several counts: one loaded run each, compared with the first",
    )
    p.add_argument("--empty-seconds", type=float, default=20.0, help="the empty-mempool run")
    p.add_argument("--load-seconds", type=float, default=60.0, help="the loaded run")
    p.add_argument("--tps", type=float, default=6000.0, help="offered transfers per second")
    p.add_argument(
        "--senders", type=int, default=None, help="the load sends from the first S accounts"
    )
    p.add_argument(
        "--overload",
        action="store_true",
        help="offer 1x, 1.5x, 2x and 4x the peak (measured at --tps offered, or --peak)",
    )
    p.add_argument("--peak", type=float, default=None, help="the peak for --overload, tx/s")
    p.add_argument(
        "--png", default="echorand-overload.png", help="--overload: where to draw the curve"
    )


def _scale_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accounts",
        type=int,
        nargs="+",
        default=[400, 1_000_000],
        help="ledger sizes, compared with the first",
    )
    p.add_argument("--rounds", type=int, default=40, help="rounds timed at each size")
    p.add_argument("--transfers", type=int, default=1000, help="transfers every other block")


def _mempool_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--senders", type=int, default=400, help="senders with queued transactions")
    p.add_argument("--queued", type=int, default=20_000, help="transactions already queued")
    p.add_argument("--batch", type=int, default=500, help="transactions admitted in one batch")


def _fuzz_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frames", type=int, default=1_000_000, help="mutated frames to try")
    p.add_argument("--seed", type=int, default=1, help="the seed of the mutations")


BENCHES: dict[str, tuple[str, BenchOptions]] = {
    "verify": (
        "Ed25519 verification (single and batch) against PyNaCl; the VRF against Ed25519 verify",
        _verify_options,
    ),
    "sortition": ("the stake table: build, committee, updates", _sortition_options),
    "chain": ("the VRF(r, s) SHA-256 hash chain against a hashlib loop", _chain_options),
    "codec": ("decoding and encoding blocks and votes", _codec_options),
    "leader": ("the leader-order study loop against the Python model", _leader_options),
    "ledger": ("checking and applying transactions, deriving keys", _ledger_options),
    "network": ("loopback TCP into decoded messages against asyncio streams", _network_options),
    "mempool": ("admitting a batch into a loaded mempool", _mempool_options),
    "devnet": ("4 node processes on loopback: blocks/s, transfers/s, finality", _devnet_options),
    "fuzz": ("mutated frames of every type through the frame splitter and decoders", _fuzz_options),
    "scale": ("a node's ledger work a round against the ledger's size", _scale_options),
}

BENCH_OPTION_NAMES = {
    "verify": {"batch": "batch_sizes"},
}


def _add_bench(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="measure the native hot path against baselines")
    names = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    for name, (help_text, add_options) in BENCHES.items():
        p = names.add_parser(name, help=help_text, description=help_text)
        add_options(p)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from echorand.tools.benchmarks.render import print_report

    module = importlib.import_module(f"echorand.tools.benchmarks.{args.bench}")
    skip = {"command", "bench", "json", "func"}
    rename = BENCH_OPTION_NAMES.get(args.bench, {})
    options = {rename.get(k, k): v for k, v in vars(args).items() if k not in skip}
    report = module.run(**options)
    print_report(report, as_json=args.json)
    return 0


# The studies' plots, imported (with matplotlib) only when a study is asked to plot.


def _leader_plots(result: LeaderResult, directory: Path) -> list[Path]:
    from echorand.tools.studies.leader_plots import save_plots

    return save_plots(result, directory)


def _participation_plot(result: SweepResult, path: Path) -> Path:
    from echorand.tools.studies.participation_plots import save_plot

    return save_plot(result, path)


def _grinding_plot(result: GrindingResult, path: Path) -> Path:
    from echorand.tools.studies.grinding_plots import save_plot

    return save_plot(result, path)


def _add_sim(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser("sim", help="simulations and studies of the protocol")
    kinds = sim.add_subparsers(dest="sim", required=True, metavar="SIM")
    from echorand.tools.studies.leader import add_leader_arguments, run_leader

    p = kinds.add_parser(
        "leader",
        help="the permissioned round-robin leader order experiment (PROTOCOL §7)",
        description="The leader-order experiment of the round-robin study, run natively.",
    )
    add_leader_arguments(p)
    p.set_defaults(func=lambda args: run_leader(args, _leader_plots))

    from echorand.sim.command import add_consensus_arguments, run_consensus

    p = kinds.add_parser(
        "consensus",
        help="N nodes running the real consensus core under a simulated clock and network",
        description="N nodes running the real consensus core, with real signatures, under a "
        "simulated clock and network. One seed reproduces a run exactly.",
    )
    add_consensus_arguments(p)
    p.set_defaults(func=run_consensus)

    from echorand.tools.studies.participation import add_participation_arguments, run_participation

    p = kinds.add_parser(
        "participation",
        help="empty blocks and block time against the online stake (the whitepaper's table)",
        description="Sweeps the online-stake fraction on the consensus simulator, seeds and "
        "points in parallel, and reports the share of empty blocks and the block time.",
    )
    add_participation_arguments(p)
    p.set_defaults(func=lambda args: run_participation(args, _participation_plot))

    from echorand.tools.studies.grinding import add_grinding_arguments, run_grinding

    p = kinds.add_parser(
        "grinding",
        help="what a leader gains by grinding Ed25519 seed signatures, against VRF seeds",
        description="A coalition's share of leaderships and committee seats when its leaders "
        "try k seed signatures, swept over k and its stake, for Ed25519 and VRF seeds.",
    )
    add_grinding_arguments(p)
    p.set_defaults(func=lambda args: run_grinding(args, _grinding_plot))


def _add_devnet(sub: argparse._SubParsersAction) -> None:
    from echorand.tools.devnet import add_devnet_arguments, main_devnet

    p = sub.add_parser(
        "devnet",
        help="N real node processes on loopback under a transaction load",
        description="Start N `echorand node` processes on 127.0.0.1 with fresh LMDB ledgers, "
        "drive a transfer load over their HTTP APIs, show live progress and end with a "
        "summary (blocks, transactions per second, finality, forks).",
    )
    add_devnet_arguments(p)
    p.set_defaults(func=main_devnet)


def _add_chaos(sub: argparse._SubParsersAction) -> None:
    from echorand.tools.chaos.command import add_chaos_arguments, main_chaos

    p = sub.add_parser(
        "chaos",
        help="real nodes on separate network hosts under faults, with a Jepsen-style checker",
        description="Start N `echorand node` processes, each in its own network namespace, "
        "inject faults on a seeded schedule (partitions, kills, pauses, slow links, a full "
        "disk) while a client records every transfer it submits, and check the histories "
        "and every node's ledger at the end. Needs root. Exit status 1: a violation.",
    )
    add_chaos_arguments(p)
    p.set_defaults(func=main_chaos)


def _add_node(sub: argparse._SubParsersAction) -> None:
    from echorand.node.launch import add_node_arguments, run_node

    p = sub.add_parser("node", help="run a node (TOML configuration)")
    add_node_arguments(p)
    p.set_defaults(func=run_node)


def _add_keys_and_genesis(sub: argparse._SubParsersAction) -> None:
    from echorand.tools.genesis import add_genesis_arguments, run_genesis
    from echorand.tools.keys import add_keys_arguments, run_keys

    p = sub.add_parser("keys", help="make a key pair file and print its public key")
    add_keys_arguments(p)
    p.set_defaults(func=run_keys)
    p = sub.add_parser("genesis", help="write a genesis (accounts, balances, Q0, parameters)")
    add_genesis_arguments(p)
    p.set_defaults(func=run_genesis)


def _add_network(sub: argparse._SubParsersAction) -> None:
    from echorand.tools.kit import add_network_arguments

    p = sub.add_parser("network", help="the files of a network on several machines (init, join)")
    add_network_arguments(p)


def _add_client(sub: argparse._SubParsersAction) -> None:
    from echorand.tools.client.commands import add_client_commands

    add_client_commands(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="echorand", description="A node for the EchoRand consensus protocol."
    )
    parser.add_argument("--version", action="version", version=f"echorand {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_bench(sub)
    _add_sim(sub)
    _add_devnet(sub)
    _add_chaos(sub)
    _add_node(sub)
    _add_keys_and_genesis(sub)
    _add_network(sub)
    _add_client(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
