"""`echorand node --config FILE` (also `python -m echorand.node.node`): a node process from its
configuration, with one line and an exit status for every way it cannot start or run; and the
passphrase options of the node and of the tools that read or write sealed key files."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from echorand.ledger.ledger import DiskFullError, LedgerError
from echorand.node.node import EXIT_DISK_FULL, Node
from echorand.wire.seal import Passphrase, PassphraseError, passphrase_source

log = logging.getLogger("echorand.node.node")


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    from echorand.node.logs import LOG_FORMATS

    parser.add_argument("--config", required=True, help="the node's TOML configuration")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default="text", help="text lines or JSON lines"
    )
    add_passphrase_arguments(parser)


def add_passphrase_arguments(parser: argparse.ArgumentParser) -> None:
    """`--passphrase-env NAME` and `--passphrase-fd N` (else: a prompt on the terminal): where
    the passphrase of sealed key files comes from (`echorand.wire.seal`)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--passphrase-env",
        metavar="NAME",
        default=None,
        help="read the key files' passphrase from this environment variable",
    )
    group.add_argument(
        "--passphrase-fd",
        metavar="N",
        type=int,
        default=None,
        help="read it from this file descriptor (its first line)",
    )


def passphrase_from_args(args: argparse.Namespace, *, confirm: bool = False) -> Passphrase:
    """The passphrase the options of `add_passphrase_arguments` say, asked for only when
    needed (and once; twice on a terminal with `confirm`)."""
    env, fd = getattr(args, "passphrase_env", None), getattr(args, "passphrase_fd", None)
    return passphrase_source(env, fd, confirm=confirm)


def _start(args: argparse.Namespace) -> Node | int:
    """The node of `args.config`, or the exit status after one line naming the problem."""
    from echorand.ledger.genesis import GenesisError
    from echorand.node.config import ConfigError, load_config
    from echorand.node.logs import configure_logging
    from echorand.wire.keys import KeyFileError

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"echorand node: {e}", file=sys.stderr)
        return 2
    configure_logging(config.log_level_number, args.log_format)
    try:
        return Node(config, passphrase_from_args(args))
    except DiskFullError as e:
        log.error("cannot start, the disk is full: %s", e)
        return EXIT_DISK_FULL
    except (GenesisError, KeyFileError, LedgerError, PassphraseError, ValueError, OSError) as e:
        log.error("cannot start: %s", e)
        return 1
    except KeyboardInterrupt:
        log.error("cannot start: interrupted while opening the ledger")
        return 130


def run_node(args: argparse.Namespace) -> int:
    """`echorand node --config FILE`: run until SIGTERM or SIGINT, which finish the commit in
    progress, close the ledger and exit 0. A start-up error is one line and exit 1 (2 for
    the configuration)."""
    from echorand.net.network import run

    node = _start(args)
    if isinstance(node, int):
        return node
    profile = os.environ.get("ECHORAND_PROFILE")
    try:
        if profile:
            # Profiling a devnet: ECHORAND_PROFILE=DIR writes DIR/node-<pid>.prof at exit.
            import cProfile

            with cProfile.Profile() as prof:
                run(node.run())
            prof.dump_stats(os.path.join(profile, f"node-{os.getpid()}.prof"))
        else:
            run(node.run())
    except DiskFullError as e:
        log.error("stopped, the disk is full: %s", e)
        return EXIT_DISK_FULL
    except LedgerError as e:
        log.error("stopped: %s", e)
        return 1
    except OSError as e:
        log.error("cannot start: %s", e)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m echorand.node.node --config FILE`: as `echorand node`."""
    parser = argparse.ArgumentParser(prog="echorand node", description="run a node")
    add_node_arguments(parser)
    return run_node(parser.parse_args(argv))
