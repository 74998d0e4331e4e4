"""`echorand network init|join`: the files of a network on several machines (docs/operating.md).

`init --hosts h1:p1,h2:p2,... --accounts N --out DIR` writes

- `DIR/genesis/`: a genesis of N accounts whose keys are random (not derived from a text,
  unlike a devnet's), Q[0] random, the protocol parameters of the options;
- `DIR/node-<i>/` for host i, everything that machine needs: `node.toml` (its address,
  the other hosts as peers, the API), `node.keys` (the seeds of the accounts it runs:
  account j is run by host j mod K; sealed with `--encrypt`), a copy of the genesis and
  `echorand.service` (a systemd unit);
- `DIR/network.json`: the hosts, the genesis hash and who runs which accounts.

`join --network DIR --host h:p --out NODEDIR` writes a non-validating node
(`validator = false`) that syncs from the hosts of `DIR/network.json` and follows them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from echorand.ledger.genesis import GENESIS_FILE, Genesis, account_entries
from echorand.net.network import parse_address
from echorand.protocol.params import Params
from echorand.tools.genesis import (
    DEFAULT_BALANCE,
    add_params_arguments,
    describe_security,
    params_from_args,
    round_robin_keys,
)
from echorand.tools.keys import add_encrypt_arguments, new_passphrase
from echorand.wire.keys import write_node_keys
from echorand.wire.seal import PassphraseError
from echorand.wire.transactions import derive_public_keys

__all__ = ["Host", "add_network_arguments", "init_network", "join_network", "parse_hosts"]

NETWORK_FILE = "network.json"
NODE_CONFIG = "node.toml"
NODE_KEYS = "node.keys"
UNIT_FILE = "echorand.service"
PASSPHRASE_ENV = "ECHORAND_PASSPHRASE"
DEFAULT_API_PORT = 8000
DEFAULT_INSTALL_DIR = "/var/lib/echorand"


@dataclass(frozen=True, slots=True)
class Host:
    address: str
    port: int

    def __str__(self) -> str:
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )


@dataclass(frozen=True, slots=True)
class Layout:
    """Where things are and how a node serves its API, for the files of one host."""

    api_port: int = DEFAULT_API_PORT
    api_on_host: bool = False
    """Bind the API on the host's address (default: 127.0.0.1 only)."""
    install_dir: str = DEFAULT_INSTALL_DIR
    user: str = "echorand"
    executable: str = "/usr/local/bin/echorand"
    sealed: bool = False


def parse_hosts(text: str) -> list[Host]:
    """`h1:p1,h2:p2,...` (distinct); ValueError naming the bad one."""
    hosts = [Host(*parse_address(part.strip())) for part in text.split(",") if part.strip()]
    if not hosts:
        raise ValueError("--hosts: no host:port given")
    seen = set()
    for host in hosts:
        if (host.address, host.port) in seen:
            raise ValueError(f"--hosts: {host} is given twice")
        seen.add((host.address, host.port))
    return hosts


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def node_config(host: Host, peers: list[Host], layout: Layout, *, validator: bool) -> str:
    """The `node.toml` of one host (paths relative to its directory)."""
    keys = f'keys = "{NODE_KEYS}"' if validator else "validator = false"
    api_host = host.address if layout.api_on_host else "127.0.0.1"
    return f"""# echorand node {host}: written by `echorand network`
[node]
data_dir = "data"
genesis = "genesis"
{keys}
log_level = "info"
min_peers = {min(len(peers), max(1, (2 * len(peers)) // 3)) if validator else 1}
join_timeout = 30.0

[network]
host = {json.dumps(host.address)}
port = {host.port}
peers = {_toml_list([str(p) for p in peers])}

[api]
host = {json.dumps(api_host)}
port = {layout.api_port}
"""


def systemd_unit(host: Host, layout: Layout, name: str) -> str:
    """A systemd service running the node of `layout.install_dir` as `layout.user`."""
    directory = layout.install_dir
    passphrase = ""
    secret = ""
    if layout.sealed:
        passphrase = f" --passphrase-env {PASSPHRASE_ENV}"
        secret = (
            f"# {PASSPHRASE_ENV}=... in this file (mode 0600, owned by root) unseals node.keys\n"
            f"EnvironmentFile=/etc/echorand/passphrase.env\n"
        )
    command = f"{layout.executable} node --config {directory}/{NODE_CONFIG} --log-format json"
    return f"""[Unit]
Description=echorand node {host} of network {name}
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User={layout.user}
Group={layout.user}
WorkingDirectory={directory}
{secret}ExecStart={command}{passphrase}
# SIGTERM: the node finishes the block it is committing, closes its ledger, exits 0.
KillSignal=SIGTERM
TimeoutStopSec=60
Restart=on-failure
RestartSec=5
LimitNOFILE=65536
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
ReadWritePaths={directory}

[Install]
WantedBy=multi-user.target
"""


def _copy_genesis(genesis_dir: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in (GENESIS_FILE, "accounts.bin"):
        shutil.copyfile(genesis_dir / name, target / name)


def init_network(
    out: Path,
    hosts: list[Host],
    *,
    accounts: int,
    params: Params,
    balance: int = DEFAULT_BALANCE,
    name: str = "echorand",
    layout: Layout | None = None,
    passphrase: bytes | None = None,
    strength: str = "moderate",
) -> Genesis:
    """Write the network's files into `out` (which must not exist yet)."""
    if accounts < len(hosts):
        raise ValueError(f"{len(hosts)} hosts need at least as many accounts, got {accounts}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not empty")
    seeds = os.urandom(32 * accounts)
    genesis = Genesis(
        name=name,
        params=params,
        seed=os.urandom(32),
        accounts=account_entries(derive_public_keys(seeds), balance),
    )
    genesis.write(out / "genesis")
    layout = replace(layout or Layout(), sealed=passphrase is not None)
    manifest: dict[str, object] = {
        "name": name,
        "genesis": genesis.hash.hex(),
        "api_port": layout.api_port,
        "hosts": [],
    }
    for i, keys in enumerate(round_robin_keys(genesis.hash, seeds, len(hosts))):
        host, peers = hosts[i], hosts[:i] + hosts[i + 1 :]
        directory = out / f"node-{i}"
        _copy_genesis(out / "genesis", directory / "genesis")
        (directory / NODE_CONFIG).write_text(
            node_config(host, peers, layout, validator=True), encoding="utf-8"
        )
        write_node_keys(directory / NODE_KEYS, keys, passphrase=passphrase, strength=strength)
        (directory / UNIT_FILE).write_text(systemd_unit(host, layout, name), encoding="utf-8")
        manifest["hosts"].append(  # type: ignore[union-attr]
            {"node": i, "address": str(host), "directory": directory.name, "accounts": len(keys)}
        )
    (out / NETWORK_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return genesis


def join_network(network: Path, host: Host, out: Path, layout: Layout | None = None) -> Genesis:
    """Write a non-validating node for the network of `network/network.json` into `out`."""
    layout = layout or Layout()
    manifest = json.loads((network / NETWORK_FILE).read_text(encoding="utf-8"))
    genesis = Genesis.load(network / "genesis")
    if genesis.hash.hex() != manifest["genesis"]:
        raise ValueError(f"{network}: the genesis is not the one network.json names")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not empty")
    peers = [Host(*parse_address(h["address"])) for h in manifest["hosts"]]
    if any(p.address == host.address and p.port == host.port for p in peers):
        raise ValueError(f"{host}: already a host of the network")
    _copy_genesis(network / "genesis", out / "genesis")
    (out / NODE_CONFIG).write_text(node_config(host, peers, layout, validator=False), "utf-8")
    (out / UNIT_FILE).write_text(systemd_unit(host, layout, manifest["name"]), encoding="utf-8")
    return genesis


# --- the command -------------------------------------------------------------------------


def _layout_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api-port", type=int, default=DEFAULT_API_PORT, help="each node's API port")
    p.add_argument(
        "--api-on-host",
        action="store_true",
        help="serve the API on the host's address (default: 127.0.0.1 only; it has no auth)",
    )
    p.add_argument(
        "--install-dir", default=DEFAULT_INSTALL_DIR, help="where a node's directory goes"
    )
    p.add_argument("--user", default="echorand", help="the system user the unit runs as")
    p.add_argument(
        "--executable", default="/usr/local/bin/echorand", help="the echorand command there"
    )


def _layout(args: argparse.Namespace) -> Layout:
    return Layout(
        api_port=args.api_port,
        api_on_host=args.api_on_host,
        install_dir=args.install_dir,
        user=args.user,
        executable=args.executable,
    )


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="network", required=True, metavar="ACTION")
    p = actions.add_parser(
        "init",
        help="write a genesis and one directory per host (config, keys, systemd unit)",
        description="Write a network of validators on several machines: a genesis with "
        "random keys, and for each host a directory with its node.toml (the other hosts as "
        "peers), its node.keys and a systemd unit.",
    )
    p.add_argument("--hosts", required=True, help="host:port,host:port,... (peer addresses)")
    p.add_argument("--accounts", type=int, required=True, help="accounts, spread over hosts")
    p.add_argument("--out", type=Path, required=True, help="the directory to write")
    p.add_argument("--balance", type=int, default=DEFAULT_BALANCE, help="each account's balance")
    p.add_argument("--name", default="echorand", help="the chain's name")
    _layout_arguments(p)
    add_params_arguments(p)
    add_encrypt_arguments(p)
    p.set_defaults(func=run_init)
    p = actions.add_parser(
        "join",
        help="write a non-validating node that syncs from a network's hosts",
        description="Write the directory of a node without keys (validator = false) that "
        "syncs the chain from the hosts of NETWORK/network.json and follows it.",
    )
    p.add_argument("--network", type=Path, required=True, help="the directory `init` wrote")
    p.add_argument("--host", required=True, help="this node's host:port")
    p.add_argument("--out", type=Path, required=True, help="the node directory to write")
    _layout_arguments(p)
    p.set_defaults(func=run_join)


def run_init(args: argparse.Namespace) -> int:
    try:
        hosts = parse_hosts(args.hosts)
        params = params_from_args(args)
        genesis = init_network(
            args.out,
            hosts,
            accounts=args.accounts,
            params=params,
            balance=args.balance,
            name=args.name,
            layout=_layout(args),
            passphrase=new_passphrase(args),
            strength=args.strength,
        )
    except (ValueError, OSError, PassphraseError) as e:
        print(f"echorand network init: {e}", file=sys.stderr)
        return 1
    print(f"genesis {genesis.hash.hex()}: {genesis.count:,} accounts on {len(hosts)} hosts")
    print(describe_security(genesis.security(), genesis.params.insecure_committee))
    for i, host in enumerate(hosts):
        print(f"  {args.out / f'node-{i}'}  ->  {host}")
    return 0


def run_join(args: argparse.Namespace) -> int:
    try:
        host = Host(*parse_address(args.host))
        genesis = join_network(args.network, host, args.out, _layout(args))
    except (ValueError, OSError, KeyError) as e:
        print(f"echorand network join: {e}", file=sys.stderr)
        return 1
    print(f"non-validating node {host} of genesis {genesis.hash.hex()[:16]}.. in {args.out}")
    return 0
