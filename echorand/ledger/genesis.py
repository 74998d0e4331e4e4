"""The genesis: the chain's name, parameters, seed Q[0] and first accounts (docs/protocol.md §13).

A genesis is a directory:

- `genesis.json`: format, name, the genesis hash, Q[0] (hex), the parameters,
  and the accounts' count, total and SHA-256 digest of `accounts.bin`, and
  `keys_checked` when its writer checked every key (below);
- `accounts.bin`: `n * (public key 32 || balance u64be)`, in account id order
  (`account_entries`).

A devnet's genesis directory holds its nodes' key files too (`echorand.tools.genesis`).

The genesis hash is `H("echorand/genesis" || 0x00 || encoding)` with

    encoding = u8(format) || u16be(len(name)) || name || Q[0] || u32be(n_g) || u32be(n_c)
               || u32be(t_h) || u32be(k) || u32be(lam_ms) || u32be(big_lam_ms)
               || u8(proposer policy) || u32be(validators) || u8(fallback)
               || u64be(floor) || u64be(ceiling) || u32be(window) || u8(decay)
               || u8(producer_share)
               || u32be(max_step) || u32be(t_f) || u32be(f numerator) || u32be(f denominator)
               || u8(insecure_committee)
               || [u8(seed mode), format 3 only]
               || u64be(n) || H(accounts.bin)

Format 2 is PROTOCOL revision 2: it adds the bounded committees (`max_step`), the
final-vote threshold `t_f`, the adversary fraction `f` the committees are checked
against (`"f": "1/5"` in genesis.json) and the `insecure_committee` waiver. A genesis
is refused unless its committees pass the check of `echorand.protocol.security` (every failure
probability at most 2^-80), or it says `insecure_committee`; genesis.json records the
computed probabilities under `security` (informational: recomputed on load).

Format 3 is format 2 with the seed mode (`params.seed_mode`, docs/protocol.md §4): the
leader's seed credential is an Ed25519 signature ("signature", 0) or an RFC 9381 VRF
proof ("vrf", 1). A genesis's format is the lowest that expresses it: 2 with the
"signature" mode (so every format-2 genesis keeps its hash, and a file without
`seed_mode` means "signature"), 3 otherwise; a genesis.json whose `format` is not that
one is refused, so each genesis has one encoding and one hash.

where the proposer policy is its index in `PROPOSER_POLICIES` (0 sortition,
1 round-robin, 2 round-robin-seeded: docs/protocol.md §14) and `fallback` is
0 or 1 (§16). In genesis.json they are `params.proposer_policy` (a name),
`params.validators` and `params.fallback` (a boolean); a file without them
means sortition, 0 and false. The block rewards (§16) are `params.rewards`
{`floor`, `ceiling`, `window`, `decay`, `producer_share`}; without it, none.

Every account key must be a valid account key (PROTOCOL §2). Checking a
million keys takes seconds, so it is done once per genesis: by its writer,
who then records `"keys_checked": true` (a devnet's keys are derived from
seeds, so they are valid by construction), or else by a ledger when it is
created from the genesis. The flag is not part of the genesis hash: it only
saves work, and `Genesis.load(check_keys=True)` checks regardless.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from array import array
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path

from echorand._native import GENESIS_ENTRY_SIZE, AccountState, valid_account_keys
from echorand.protocol.params import PROPOSER_POLICIES, SEED_MODES, Params, Rewards
from echorand.protocol.security import CommitteeSecurity, analyse
from echorand.wire.columns import column, interleave
from echorand.wire.constants import HASH_SIZE, KEY_SIZE

__all__ = [
    "ACCOUNTS_FILE",
    "GENESIS_FILE",
    "GENESIS_FORMAT",
    "GENESIS_TAG",
    "SUPPLY_LIMIT",
    "Genesis",
    "GenesisError",
    "account_entries",
]

GENESIS_FORMAT = 3
"""The newest genesis format this code reads and writes (`Genesis.format` is a genesis's own)."""
_FORMATS = (2, GENESIS_FORMAT)
GENESIS_TAG = b"echorand/genesis"
GENESIS_FILE = "genesis.json"
ACCOUNTS_FILE = "accounts.bin"
SUPPLY_LIMIT = 1 << 63

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_U32_PARAMS = ("n_g", "n_c", "t_h", "k", "lam_ms", "big_lam_ms")
_REVISION_2_PARAMS = ("max_step", "t_f")
"""u32 parameters of format 2, encoded after the rewards."""
_POLICY_PARAMS = ("proposer_policy", "validators", "fallback", "rewards")
_SECURITY_PARAMS = ("f", "insecure_committee")
_FORMAT_3_PARAMS = ("seed_mode",)
_REWARD_FIELDS = tuple(f.name for f in fields(Rewards))


class GenesisError(ValueError):
    """A genesis that cannot be used; the text names the file and the field."""


@dataclass(frozen=True, slots=True)
class Genesis:
    """A chain's genesis. `accounts` is `n * (pk 32 || balance u64be)`, compact.

    Building one checks every field: a name of 1-64 characters `[A-Za-z0-9._-]`,
    a 32-byte seed, parameters that fit a u32, at least one account and a total
    balance in (0, 2^63), without a pass over the keys. That the keys are distinct
    and valid account keys (not small-order, canonical) is checked by
    `check_keys()`, which the ledger calls before it creates the accounts unless
    `keys_checked`; the accounts it creates refuse a repeated key in any case.
    """

    name: str
    params: Params
    seed: bytes
    """Q[0]."""
    accounts: bytes = field(repr=False)
    keys_checked: bool = field(default=False, compare=False)
    """Whoever wrote the genesis checked every key (not in the hash; see the module docs)."""
    count: int = field(init=False)
    total: int = field(init=False)
    accounts_digest: bytes = field(init=False, repr=False)
    hash: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise GenesisError(f"name: 1-64 characters of [A-Za-z0-9._-], got {self.name!r}")
        if not isinstance(self.params, Params):
            raise GenesisError(f"params: expected Params, got {type(self.params).__name__}")
        for name in (*_U32_PARAMS, *_REVISION_2_PARAMS, "validators"):
            value = getattr(self.params, name)
            if value >= 2**32:
                raise GenesisError(f"params.{name}: must fit a u32, got {value}")
        if not self.params.insecure_committee:
            problems = analyse(self.params).problems()
            if problems:
                raise GenesisError(
                    "params: the committees are not secure (PROTOCOL §5): "
                    + "; ".join(problems)
                    + " (larger n_c, another t_h/t_f, or insecure_committee to waive it)"
                )
        if not isinstance(self.seed, bytes) or len(self.seed) != HASH_SIZE:
            raise GenesisError(f"seed: must be {HASH_SIZE} bytes")
        if not isinstance(self.accounts, bytes):
            raise GenesisError(f"accounts: expected bytes, got {type(self.accounts).__name__}")
        if not self.accounts or len(self.accounts) % GENESIS_ENTRY_SIZE:
            raise GenesisError(
                f"accounts: need a positive whole number of {GENESIS_ENTRY_SIZE}-byte entries,"
                f" got {len(self.accounts)} bytes"
            )
        total = _total(self.accounts)
        if total >= SUPPLY_LIMIT:
            raise GenesisError("accounts: the total of the balances reaches 2**63")
        if total == 0:
            raise GenesisError("accounts: the total balance is zero (sortition needs stake)")
        object.__setattr__(self, "count", len(self.accounts) // GENESIS_ENTRY_SIZE)
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "accounts_digest", hashlib.sha256(self.accounts).digest())
        object.__setattr__(self, "hash", _hash(self))

    def public_key(self, account: int) -> bytes:
        at = GENESIS_ENTRY_SIZE * account
        if not 0 <= account < self.count:
            raise IndexError(f"account {account}: the genesis has {self.count}")
        return self.accounts[at : at + KEY_SIZE]

    def balance(self, account: int) -> int:
        at = GENESIS_ENTRY_SIZE * account + KEY_SIZE
        if not 0 <= account < self.count:
            raise IndexError(f"account {account}: the genesis has {self.count}")
        return int.from_bytes(self.accounts[at : at + 8], "big")

    def public_keys(self) -> bytes:
        """All public keys in id order, concatenated (n * 32 bytes)."""
        return column(self.accounts, GENESIS_ENTRY_SIZE, 0, KEY_SIZE)

    def check_keys(self) -> None:
        """GenesisError naming the first account whose key repeats another's or may not own
        an account (PROTOCOL §2)."""
        self.account_state(check_keys=False)
        ok = valid_account_keys(self.public_keys())
        if not all(ok):
            bad = ok.index(False)
            raise GenesisError(
                f"accounts: account {bad}: public key {self.public_key(bad).hex()}"
                " is small-order or non-canonical"
            )

    def account_state(self, *, check_keys: bool = True) -> AccountState:
        """A fresh account state with the genesis balances."""
        try:
            return AccountState(self.accounts, check_keys=check_keys)
        except ValueError as e:
            raise GenesisError(f"accounts: {e}") from None

    @property
    def format(self) -> int:
        """The genesis format: 2 under the "signature" seed mode, 3 under "vrf"."""
        return 2 if self.params.seed_mode == SEED_MODES[0] else 3

    def encoding(self) -> bytes:
        """What the genesis hash is taken of (after its tag)."""
        name = self.name.encode("ascii")
        p = self.params
        mode = SEED_MODES.index(p.seed_mode).to_bytes(1, "big") if self.format >= 3 else b""
        return b"".join(
            [
                self.format.to_bytes(1, "big"),
                len(name).to_bytes(2, "big"),
                name,
                self.seed,
                *(getattr(p, n).to_bytes(4, "big") for n in _U32_PARAMS),
                PROPOSER_POLICIES.index(p.proposer_policy).to_bytes(1, "big"),
                p.validators.to_bytes(4, "big"),
                int(p.fallback).to_bytes(1, "big"),
                _rewards_encoding(p.rewards),
                *(getattr(p, n).to_bytes(4, "big") for n in _REVISION_2_PARAMS),
                p.f.numerator.to_bytes(4, "big"),
                p.f.denominator.to_bytes(4, "big"),
                int(p.insecure_committee).to_bytes(1, "big"),
                mode,
                self.count.to_bytes(8, "big"),
                self.accounts_digest,
            ]
        )

    def to_json(self) -> dict[str, object]:
        """The contents of genesis.json."""
        return {
            "format": self.format,
            "name": self.name,
            "hash": self.hash.hex(),
            "seed": self.seed.hex(),
            "params": {
                **{n: getattr(self.params, n) for n in _U32_PARAMS},
                "proposer_policy": self.params.proposer_policy,
                "validators": self.params.validators,
                "fallback": self.params.fallback,
                "rewards": {n: getattr(self.params.rewards, n) for n in _REWARD_FIELDS},
                **{n: getattr(self.params, n) for n in _REVISION_2_PARAMS},
                "f": str(self.params.f),
                "insecure_committee": self.params.insecure_committee,
                **({"seed_mode": self.params.seed_mode} if self.format >= 3 else {}),
            },
            "security": self.security().to_json(),
            "accounts": {
                "count": self.count,
                "total": self.total,
                "sha256": self.accounts_digest.hex(),
                **({"keys_checked": True} if self.keys_checked else {}),
            },
        }

    def security(self) -> CommitteeSecurity:
        """The committee analysis of the parameters (PROTOCOL §5)."""
        return analyse(self.params)

    def write(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write genesis.json and accounts.bin into directory `path` (created if missing).

        genesis.json is written last: a directory with it is complete.
        """
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / GENESIS_FILE
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target}: exists (use overwrite to replace it)")
        _write_atomic(directory / ACCOUNTS_FILE, self.accounts)
        _write_atomic(target, (json.dumps(self.to_json(), indent=2) + "\n").encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, check_keys: bool = False) -> Genesis:
        """Read and check a genesis directory (or the path of its genesis.json).

        Every field is checked, the digest of accounts.bin and the genesis hash
        are recomputed, and with `check_keys` every account key is checked too
        (8 µs a key on one core: the ledger does it once, when it is created).
        """
        directory = Path(path)
        if directory.name == GENESIS_FILE:
            directory = directory.parent
        doc = _read_json(directory / GENESIS_FILE)
        genesis = _from_json(doc, directory)
        if check_keys:
            genesis.check_keys()
        return genesis


def _total(accounts: bytes) -> int:
    """The sum of the balances of genesis entries (`pk 32 || balance u64be`)."""
    balances = array("Q", column(accounts, GENESIS_ENTRY_SIZE, KEY_SIZE, 8))
    if sys.byteorder == "little":
        balances.byteswap()
    return sum(balances)


def _fraction(p: _Fields, name: str) -> Fraction:
    """A fraction written "a/b" (b < 2^32)."""
    text = p.str(name)
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise p.error(name, f'not a fraction "a/b": {text!r}') from None
    if str(value) != text:
        raise p.error(name, f"write it in lowest terms, {str(value)!r}, not {text!r}")
    return value


def _rewards_encoding(r: Rewards) -> bytes:
    return b"".join(
        [
            r.floor.to_bytes(8, "big"),
            r.ceiling.to_bytes(8, "big"),
            r.window.to_bytes(4, "big"),
            r.decay.to_bytes(1, "big"),
            r.producer_share.to_bytes(1, "big"),
        ]
    )


def _rewards(p: _Fields) -> Rewards:
    """`params.rewards`, or no rewards when it is absent."""
    if "rewards" not in p.doc:
        return Rewards()
    r = p.object("rewards")
    r.only(set(_REWARD_FIELDS))
    defaults = Rewards()
    values = {
        n: r.int(n, 0, 2**64 - 1) if n in r.doc else getattr(defaults, n) for n in _REWARD_FIELDS
    }
    try:
        return Rewards(**values)
    except ValueError as e:
        raise GenesisError(f"{p.where}: params.{e}") from None


def _hash(g: Genesis) -> bytes:
    return hashlib.sha256(GENESIS_TAG + b"\x00" + g.encoding()).digest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(path.read_bytes())
    except OSError as e:
        raise GenesisError(f"{path}: cannot read: {e.strerror}") from None
    except ValueError as e:
        raise GenesisError(f"{path}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise GenesisError(f"{path}: not a JSON object")
    return doc


class _Fields:
    """Typed access to a JSON object, with errors naming file and field."""

    def __init__(self, doc: dict[str, object], where: str, prefix: str = "") -> None:
        self.doc, self.where, self.prefix = doc, where, prefix

    def error(self, name: str, why: str) -> GenesisError:
        return GenesisError(f"{self.where}: {self.prefix}{name}: {why}")

    def only(self, names: set[str]) -> None:
        for name in self.doc:
            if name not in names:
                raise self.error(name, "unknown field")

    def int(self, name: str, low: int, high: int) -> int:
        value = self.doc.get(name)
        if type(value) is not int:
            raise self.error(name, f"missing or not an integer (got {value!r})")
        if not low <= value <= high:
            raise self.error(name, f"must be in [{low}, {high}], got {value}")
        return value

    def str(self, name: str) -> str:
        value = self.doc.get(name)
        if not isinstance(value, str):
            raise self.error(name, f"missing or not a string (got {value!r})")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """An optional string from `choices` (`default` when absent)."""
        if name not in self.doc:
            return default
        value = self.str(name)
        if value not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def bool(self, name: str, default: bool) -> bool:
        """An optional boolean (`default` when absent)."""
        value = self.doc.get(name, default)
        if type(value) is not bool:
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def hex(self, name: str, size: int) -> bytes:
        text = self.str(name)
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise self.error(name, "not hex") from None
        if len(raw) != size:
            raise self.error(name, f"must be {size} bytes of hex, got {len(raw)}")
        return raw

    def object(self, name: str) -> _Fields:
        value = self.doc.get(name)
        if not isinstance(value, dict):
            raise self.error(name, "missing or not an object")
        return _Fields(value, self.where, f"{self.prefix}{name}.")


def _from_json(doc: dict[str, object], directory: Path) -> Genesis:
    where = str(directory / GENESIS_FILE)
    top = _Fields(doc, where)
    top.only({"format", "name", "hash", "seed", "params", "accounts", "security"})
    if doc.get("format") == 1:
        raise top.error(
            "format",
            "1 predates PROTOCOL revision 2 (signatures bound to the genesis hash, bounded"
            " committees); make a new genesis",
        )
    form = top.int("format", _FORMATS[0], _FORMATS[-1])
    name = top.str("name")
    seed = top.hex("seed", HASH_SIZE)
    expected_hash = top.hex("hash", HASH_SIZE)
    p = top.object("params")
    p.only(
        {
            *_U32_PARAMS,
            *_POLICY_PARAMS,
            *_REVISION_2_PARAMS,
            *_SECURITY_PARAMS,
            *(_FORMAT_3_PARAMS if form >= 3 else ()),
        }
    )
    values: dict[str, object] = {
        n: p.int(n, 0, 2**32 - 1) for n in (*_U32_PARAMS, *_REVISION_2_PARAMS)
    }
    values["f"] = _fraction(p, "f")
    values["insecure_committee"] = p.bool("insecure_committee", False)
    values["proposer_policy"] = p.choice("proposer_policy", PROPOSER_POLICIES, "sortition")
    values["validators"] = p.int("validators", 0, 2**32 - 1) if "validators" in p.doc else 0
    values["fallback"] = p.bool("fallback", False)
    values["seed_mode"] = p.choice("seed_mode", SEED_MODES, SEED_MODES[0])
    values["rewards"] = _rewards(p)
    try:
        params = Params(**values)
    except ValueError as e:
        raise GenesisError(f"{where}: params: {e}") from None
    a = top.object("accounts")
    a.only({"count", "total", "sha256", "keys_checked"})
    count = a.int("count", 1, 2**63)
    total = a.int("total", 1, SUPPLY_LIMIT - 1)
    digest = a.hex("sha256", HASH_SIZE)
    path = directory / ACCOUNTS_FILE
    accounts = _read_accounts(path, count)
    try:
        genesis = Genesis(
            name=name,
            params=params,
            seed=seed,
            accounts=accounts,
            keys_checked=a.bool("keys_checked", False),
        )
    except GenesisError as e:
        _check_digest(path, hashlib.sha256(accounts).digest(), digest)
        raise GenesisError(f"{where}: {e}") from None
    _check_digest(path, genesis.accounts_digest, digest)
    if genesis.total != total:
        raise a.error("total", f"{total} does not match {ACCOUNTS_FILE} ({genesis.total})")
    if genesis.format != form:
        raise top.error(
            "format",
            f"{form}, but a genesis with seed_mode {params.seed_mode!r} is format {genesis.format}",
        )
    if genesis.hash != expected_hash:
        raise top.error("hash", f"does not match the genesis (computed {genesis.hash.hex()})")
    return genesis


def _read_accounts(path: Path, count: int) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise GenesisError(f"{path}: cannot read: {e.strerror}") from None
    if len(data) != count * GENESIS_ENTRY_SIZE:
        raise GenesisError(
            f"{path}: {len(data)} bytes, but accounts.count {count} needs "
            f"{count * GENESIS_ENTRY_SIZE}"
        )
    return data


def _check_digest(path: Path, found: bytes, expected: bytes) -> None:
    """The file's SHA-256 (taken once, by the Genesis) is the one genesis.json names."""
    if found != expected:
        raise GenesisError(f"{path}: its SHA-256 does not match accounts.sha256 of genesis.json")


def account_entries(public_keys: bytes, balance: int) -> bytes:
    """`accounts.bin` for these keys (n * 32 bytes), each account holding `balance`."""
    count = len(public_keys) // KEY_SIZE
    entries = bytearray(GENESIS_ENTRY_SIZE * count)
    balances = balance.to_bytes(8, "big") * count
    interleave(entries, GENESIS_ENTRY_SIZE, [(0, KEY_SIZE, public_keys), (KEY_SIZE, 8, balances)])
    return bytes(entries)
