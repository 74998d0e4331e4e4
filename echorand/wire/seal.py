"""Key files at rest: sealed with a passphrase (libsodium's Argon2id and XSalsa20-Poly1305).

A sealed file is

    magic "ERSEAL01" || opslimit u64be || memlimit u64be || salt 16
    || SecretBox(key, plaintext)          (nonce 24 || ciphertext with its 16-byte tag)

where `key = Argon2id(passphrase, salt, opslimit, memlimit)` (PyNaCl's `pwhash.argon2id`,
32 bytes) and the plaintext is the key file's own bytes (`echorand.wire.keys`). The cost
limits are stored, so a file sealed at any strength opens without options. A wrong
passphrase and a damaged file are the same failure (the MAC): `SealError`.

The passphrase comes from an environment variable (`--passphrase-env NAME`), a file
descriptor (`--passphrase-fd N`, its first line), or a prompt on the terminal
(`passphrase_source`; the options: `echorand.node.launch`); it is asked for only when a
sealed file is read or written.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from nacl import pwhash, secret, utils
from nacl.exceptions import CryptoError

__all__ = [
    "SEAL_MAGIC",
    "STRENGTHS",
    "PassphraseError",
    "SealError",
    "is_sealed",
    "passphrase_source",
    "seal",
    "unseal",
]

SEAL_MAGIC = b"ERSEAL01"
_SALT = pwhash.argon2id.SALTBYTES
_HEADER = len(SEAL_MAGIC) + 8 + 8 + _SALT
STRENGTHS = {
    "interactive": (pwhash.argon2id.OPSLIMIT_INTERACTIVE, pwhash.argon2id.MEMLIMIT_INTERACTIVE),
    "moderate": (pwhash.argon2id.OPSLIMIT_MODERATE, pwhash.argon2id.MEMLIMIT_MODERATE),
    "sensitive": (pwhash.argon2id.OPSLIMIT_SENSITIVE, pwhash.argon2id.MEMLIMIT_SENSITIVE),
}
"""libsodium's three cost levels: 64 MiB, 256 MiB, 1 GiB of memory."""
DEFAULT_STRENGTH = "moderate"
_MAX_MEMLIMIT = pwhash.argon2id.MEMLIMIT_MAX


class SealError(ValueError):
    """A sealed file that does not open: wrong passphrase, or damaged."""


class PassphraseError(ValueError):
    """No passphrase could be had (no variable, an empty descriptor, no terminal)."""


Passphrase = Callable[[], bytes]
"""Asked for the passphrase only when it is needed."""


def is_sealed(data: bytes) -> bool:
    return data.startswith(SEAL_MAGIC)


def _key(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return pwhash.argon2id.kdf(secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit, memlimit)


def seal(plaintext: bytes, passphrase: bytes, strength: str = DEFAULT_STRENGTH) -> bytes:
    """The sealed form of `plaintext` (see the module docs)."""
    if not passphrase:
        raise PassphraseError("an empty passphrase seals nothing")
    opslimit, memlimit = STRENGTHS[strength]
    salt = utils.random(_SALT)
    box = secret.SecretBox(_key(passphrase, salt, opslimit, memlimit))
    header = SEAL_MAGIC + opslimit.to_bytes(8, "big") + memlimit.to_bytes(8, "big") + salt
    return header + bytes(box.encrypt(plaintext))


def unseal(data: bytes, passphrase: bytes, where: str) -> bytes:
    """The plaintext of a sealed file; SealError naming `where` when it does not open."""
    if len(data) < _HEADER + secret.SecretBox.NONCE_SIZE + secret.SecretBox.MACBYTES:
        raise SealError(f"{where}: sealed file truncated ({len(data)} bytes)")
    at = len(SEAL_MAGIC)
    opslimit = int.from_bytes(data[at : at + 8], "big")
    memlimit = int.from_bytes(data[at + 8 : at + 16], "big")
    salt = data[at + 16 : _HEADER]
    if not (
        pwhash.argon2id.OPSLIMIT_MIN <= opslimit <= pwhash.argon2id.OPSLIMIT_MAX
        and pwhash.argon2id.MEMLIMIT_MIN <= memlimit <= _MAX_MEMLIMIT
    ):
        raise SealError(f"{where}: sealed file damaged (cost limits {opslimit}, {memlimit})")
    box = secret.SecretBox(_key(passphrase, salt, opslimit, memlimit))
    try:
        return bytes(box.decrypt(data[_HEADER:]))
    except CryptoError:
        raise SealError(f"{where}: wrong passphrase, or the file is damaged") from None


# --- where the passphrase comes from ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """One place to read the passphrase from; read at most once."""

    env: str | None = None
    fd: int | None = None
    confirm: bool = False
    """A prompt asks twice (when a new file is sealed)."""

    def describe(self) -> str:
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.fd is not None:
            return f"file descriptor {self.fd}"
        return "the terminal"

    def read(self) -> bytes:
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise PassphraseError(f"the environment variable {self.env} is not set or empty")
            return value.encode()
        if self.fd is not None:
            return _read_fd(self.fd)
        return _prompt(self.confirm)


def _read_fd(fd: int) -> bytes:
    try:
        with os.fdopen(fd, "rb", closefd=True) as f:
            line = f.readline()
    except OSError as e:
        raise PassphraseError(f"file descriptor {fd}: {e.strerror}") from None
    value = line.rstrip(b"\r\n")
    if not value:
        raise PassphraseError(f"file descriptor {fd}: no passphrase (an empty first line)")
    return value


def _prompt(confirm: bool) -> bytes:
    if not sys.stdin.isatty():
        raise PassphraseError(
            "a sealed key file needs a passphrase: no terminal to ask on "
            "(give --passphrase-env NAME or --passphrase-fd N)"
        )
    value = getpass.getpass("passphrase: ")
    if confirm and getpass.getpass("passphrase again: ") != value:
        raise PassphraseError("the two passphrases differ")
    if not value:
        raise PassphraseError("an empty passphrase")
    return value.encode()


class _Once:
    """The passphrase of a source, read the first time it is needed and then kept."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.value: bytes | None = None

    def __call__(self) -> bytes:
        if self.value is None:
            self.value = self.source.read()
        return self.value


def passphrase_source(
    env: str | None = None, fd: int | None = None, *, confirm: bool = False
) -> Passphrase:
    """The passphrase of environment variable `env`, else file descriptor `fd`, else a prompt
    on the terminal (asked twice with `confirm`): asked for only when needed (and once)."""
    return _Once(Source(env, fd, confirm))
