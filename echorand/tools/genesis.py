"""`echorand genesis`: a devnet's genesis and its nodes' key files, and the options of the
protocol parameters that `genesis`, `devnet` and `network init` share.

A devnet is deterministic from a text seed S: `master = H(utf8(S))`,
`seed_i = H("echorand/devnet-key" || 0x00 || master || u64be(i))`,
`Q[0] = H("echorand/devnet-q0" || 0x00 || master)`, and account `i` is run by
node `i mod nodes` (round robin). Its genesis directory (`echorand.ledger.genesis`)
holds, beside genesis.json and accounts.bin, `keys/node-<i>.keys`: the secret
seeds of the accounts node `i` runs (`echorand.wire.keys`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from fractions import Fraction
from pathlib import Path

from echorand._native import derive_public_keys, devnet_seeds
from echorand.ledger.genesis import GENESIS_FILE, SUPPLY_LIMIT, Genesis, account_entries
from echorand.protocol.params import PROPOSER_POLICIES, SEED_MODES, Params, Rewards
from echorand.protocol.security import CommitteeSecurity, log2, scientific
from echorand.wire.constants import KEY_SIZE
from echorand.wire.keys import NodeKeys, write_node_keys

__all__ = [
    "DEFAULT_BALANCE",
    "add_genesis_arguments",
    "add_params_arguments",
    "add_reward_arguments",
    "create_devnet",
    "describe_security",
    "devnet_master",
    "node_keys_path",
    "params_from_args",
    "rewards_from_args",
    "round_robin_keys",
    "run_genesis",
]

DEVNET_Q0_TAG = b"echorand/devnet-q0"
KEYS_DIR = "keys"
DEFAULT_BALANCE = 1_000_000_000
"""A devnet account's balance: a million accounts hold 10^15 in all (< 2^63)."""


# --- devnets ------------------------------------------------------------------------


def devnet_master(seed: str) -> bytes:
    """The devnet master secret of a text seed: H(utf8(seed))."""
    return hashlib.sha256(seed.encode("utf-8")).digest()


def node_keys_path(path: str | os.PathLike[str], node: int) -> Path:
    """Where node `node` of a devnet finds its keys."""
    return Path(path) / KEYS_DIR / f"node-{node}.keys"


def create_devnet(
    path: str | os.PathLike[str],
    *,
    accounts: int,
    nodes: int,
    seed: str,
    balance: int = DEFAULT_BALANCE,
    params: Params | None = None,
    name: str = "devnet",
    overwrite: bool = False,
) -> Genesis:
    """Write a devnet genesis and its node key files into directory `path`.

    `accounts` accounts of `balance` each, keys derived from `seed`; account i
    is run by node `i mod nodes`. Deterministic: the same arguments give the
    same genesis hash.
    """
    if accounts < 1 or nodes < 1:
        raise ValueError(f"need at least one account and one node, got {accounts} and {nodes}")
    if nodes > accounts:
        raise ValueError(f"{nodes} nodes need at least as many accounts, got {accounts}")
    if balance < 1 or accounts * balance >= SUPPLY_LIMIT:
        raise ValueError(f"accounts * balance must be in [1, 2**63), got {accounts} * {balance}")
    directory = Path(path)
    if (directory / GENESIS_FILE).exists() and not overwrite:
        raise FileExistsError(f"{directory / GENESIS_FILE}: exists (use overwrite to replace it)")
    master = devnet_master(seed)
    seeds = devnet_seeds(master, accounts)
    q0 = hashlib.sha256(DEVNET_Q0_TAG + b"\x00" + master).digest()
    entries = account_entries(derive_public_keys(seeds), balance)
    # Valid by construction: a clamped scalar 8k (2^251 <= k < 2^252 < L) times the base
    # point is a point of order L, and dalek's encoding is canonical.
    genesis = Genesis(
        name=name, params=params or Params(), seed=q0, accounts=entries, keys_checked=True
    )
    genesis.write(directory, overwrite=overwrite)
    (directory / KEYS_DIR).mkdir(exist_ok=True)
    for node, keys in enumerate(round_robin_keys(genesis.hash, seeds, nodes)):
        write_node_keys(node_keys_path(directory, node), keys, overwrite=overwrite)
    return genesis


def round_robin_keys(genesis_hash: bytes, seeds: bytes, nodes: int) -> list[NodeKeys]:
    """The key files of `nodes` nodes: account i (seed i of `seeds`) run by node i mod nodes."""
    accounts = len(seeds) // KEY_SIZE
    out = []
    for node in range(nodes):
        ids = range(node, accounts, nodes)
        mine = bytearray(KEY_SIZE * len(ids))
        for j in range(KEY_SIZE):
            mine[j::KEY_SIZE] = seeds[KEY_SIZE * node + j :: KEY_SIZE * nodes]
        out.append(NodeKeys(genesis_hash, node, nodes, tuple(ids), bytes(mine)))
    return out


# --- echorand genesis ----------------------------------------------------------------


def add_genesis_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `echorand genesis`."""
    parser.add_argument("--accounts", type=int, required=True, help="accounts to create")
    parser.add_argument("--nodes", type=int, required=True, help="devnet nodes to make keys for")
    parser.add_argument("--out", required=True, help="the genesis directory to write")
    parser.add_argument("--seed", required=True, help="text that all keys and Q[0] derive from")
    parser.add_argument(
        "--balance", type=int, default=DEFAULT_BALANCE, help="each account's balance"
    )
    parser.add_argument("--name", default="devnet", help="the chain's name")
    add_params_arguments(parser)
    parser.add_argument("--force", action="store_true", help="overwrite an existing genesis")


def add_params_arguments(parser: argparse.ArgumentParser) -> None:
    """The protocol parameters' options (`genesis`, `network init`): `params_from_args`."""
    defaults = Params()
    parser.add_argument("--n-g", type=int, default=defaults.n_g, help="N_g: producer seats")
    parser.add_argument("--n-c", type=int, default=defaults.n_c, help="N_c: verifier seats")
    parser.add_argument(
        "--t-h", type=int, default=None, help="t_h: pass threshold (default 0.69 * N_c)"
    )
    parser.add_argument("--k", type=int, default=defaults.k, help="k: BBA loops (mu = 4 + 3k)")
    parser.add_argument(
        "--max-step",
        type=int,
        default=None,
        help="the last step with a committee of its own, 4 + 3m with m >= k (default m = 2k)",
    )
    parser.add_argument(
        "--t-f", type=int, default=None, help="t_f: final-vote threshold (default 0.74 * N_c)"
    )
    parser.add_argument(
        "--adversary",
        type=Fraction,
        default=defaults.f,
        metavar="F",
        help="f: the adversary's stake fraction the committees are checked against (a/b)",
    )
    parser.add_argument(
        "--insecure-committee",
        action="store_true",
        help="write the genesis even if its committees fail the 2^-80 check (devnets, tests)",
    )
    parser.add_argument("--lam-ms", type=int, default=defaults.lam_ms, help="lambda, in ms")
    parser.add_argument("--big-lam-ms", type=int, default=defaults.big_lam_ms, help="Lambda, in ms")
    parser.add_argument(
        "--proposer-policy",
        choices=PROPOSER_POLICIES,
        default=defaults.proposer_policy,
        help="who produces in step 1: sortition by stake, or the round-robin order of a fixed "
        "validator set (accounts 0 .. N-1)",
    )
    parser.add_argument(
        "--validators", type=int, default=0, help="N, under a round-robin proposer policy"
    )
    parser.add_argument(
        "--fallback", action="store_true", help="turn on the automatic fallback (delegation)"
    )
    parser.add_argument(
        "--seed-mode",
        choices=SEED_MODES,
        default=defaults.seed_mode,
        help="the leader's seed credential: an Ed25519 signature, or an RFC 9381 VRF proof "
        "that a leader cannot grind (genesis format 3)",
    )
    add_reward_arguments(parser, defaults.rewards)


_REWARD_OPTIONS = (
    ("floor", "--reward-floor", "units a non-empty block mints when no recent block was empty"),
    ("ceiling", "--reward-ceiling", "units it mints when every recent block was empty"),
    ("window", "--reward-window", "the recent blocks whose empty share sets the level"),
    ("decay", "--reward-decay", "the level falls by 1/2^decay of its gap to the floor a round"),
    ("producer_share", "--producer-share", "percent for the producer (the rest: verifiers)"),
)


def add_reward_arguments(parser: argparse.ArgumentParser, defaults: Rewards) -> None:
    """The block rewards' options (docs/protocol.md §16), for `genesis` and `devnet`."""
    group = parser.add_argument_group("block rewards (none when the ceiling is 0)")
    for field_name, flag, text in _REWARD_OPTIONS:
        default = getattr(defaults, field_name)
        group.add_argument(flag, type=int, default=default, dest=f"reward_{field_name}", help=text)


def params_from_args(args: argparse.Namespace) -> Params:
    """The `Params` of `add_params_arguments`' options (ValueError naming a bad one)."""
    return Params(
        n_g=args.n_g,
        n_c=args.n_c,
        t_h=-1 if args.t_h is None else args.t_h,
        k=args.k,
        lam_ms=args.lam_ms,
        big_lam_ms=args.big_lam_ms,
        proposer_policy=args.proposer_policy,
        validators=args.validators,
        fallback=args.fallback,
        rewards=rewards_from_args(args),
        max_step=-1 if args.max_step is None else args.max_step,
        t_f=-1 if args.t_f is None else args.t_f,
        f=args.adversary,
        insecure_committee=args.insecure_committee,
        seed_mode=args.seed_mode,
    )


def rewards_from_args(args: argparse.Namespace) -> Rewards:
    """The `Rewards` of `add_reward_arguments`' options (ValueError naming a bad one)."""
    return Rewards(**{name: getattr(args, f"reward_{name}") for name, _, _ in _REWARD_OPTIONS})


def run_genesis(args: argparse.Namespace) -> int:
    """`echorand genesis`: write a devnet genesis; print its hash and size."""
    start = time.perf_counter()
    try:
        params = params_from_args(args)
        genesis = create_devnet(
            args.out,
            accounts=args.accounts,
            nodes=args.nodes,
            seed=args.seed,
            balance=args.balance,
            params=params,
            name=args.name,
            overwrite=args.force,
        )
    except (ValueError, OSError) as e:
        print(f"echorand genesis: {e}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    print(f"genesis {genesis.hash.hex()}")
    print(f"  {genesis.count:,} accounts, total {genesis.total:,}, {args.nodes} node key files")
    print(describe_security(genesis.security(), genesis.params.insecure_committee))
    print(f"  written to {args.out} in {elapsed:.2f} s")
    return 0


def describe_security(security: CommitteeSecurity, waived: bool) -> str:
    """The committee analysis in a few lines, for `echorand genesis` and the devnet."""
    lines = [f"  committees: N_c = {security.n_c}, adversary f = {security.f}"]
    for t in security.thresholds:
        lines.append(
            f"    {t.name} = {t.t}: alone {scientific(t.alone)} (2^{log2(t.alone):.1f}),"
            f" equivocating {scientific(t.equivocating)} (2^{log2(t.equivocating):.1f})"
        )
    if security.secure:
        lines.append("    secure: every probability is at most 2^-80")
    elif waived:
        lines.append(
            "    INSECURE (waived by --insecure-committee): an adversary of f controls a"
            " committee with the probabilities above"
        )
    return "\n".join(lines)
