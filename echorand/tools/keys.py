"""`echorand keys --out FILE`: a key pair file (`echorand.wire.keys`); and `--encrypt`, which
seals the key files a command writes with a passphrase (`keys`, `network init`)."""

from __future__ import annotations

import argparse
import sys

from echorand.node.launch import add_passphrase_arguments, passphrase_from_args
from echorand.wire.crypto import Keypair
from echorand.wire.keys import write_keypair
from echorand.wire.seal import DEFAULT_STRENGTH, STRENGTHS, PassphraseError

__all__ = ["add_encrypt_arguments", "add_keys_arguments", "new_passphrase", "run_keys"]


def add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echorand keys`."""
    parser.add_argument("--out", required=True, help="the key file to write (JSON, mode 0600)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    add_encrypt_arguments(parser)


def add_encrypt_arguments(parser: argparse.ArgumentParser) -> None:
    """`--encrypt`, `--strength` and where the passphrase comes from."""
    parser.add_argument(
        "--encrypt",
        action="store_true",
        help="seal the key file(s) with a passphrase (Argon2id + XSalsa20-Poly1305)",
    )
    parser.add_argument(
        "--strength",
        choices=tuple(STRENGTHS),
        default=DEFAULT_STRENGTH,
        help="the passphrase hash's cost (default %(default)s)",
    )
    add_passphrase_arguments(parser)


def new_passphrase(args: argparse.Namespace) -> bytes | None:
    """The passphrase to seal new key files with (--encrypt), else None."""
    if not args.encrypt:
        return None
    return passphrase_from_args(args, confirm=True)()


def run_keys(args: argparse.Namespace) -> int:
    """`echorand keys --out FILE`: make a key pair, save it, print its public key."""
    keypair = Keypair.generate()
    try:
        passphrase = new_passphrase(args)
        write_keypair(
            args.out, keypair, overwrite=args.force, passphrase=passphrase, strength=args.strength
        )
    except (FileExistsError, OSError, PassphraseError) as e:
        print(f"echorand keys: {e}", file=sys.stderr)
        return 1
    print(keypair.public_key.hex())
    return 0
