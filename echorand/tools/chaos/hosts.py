"""The hosts of a chaos run: one Linux network namespace per node, and what can go wrong
with their network and their disks.

Each node runs in its own network namespace `erch-<pid>-n<k>` with one interface, `eth0`,
at 10.77.0.<k+1>/24. A veth pair joins it to a bridge `br0` in the harness's namespace
`erch-<pid>-hub`, where the harness has 10.77.0.254 to reach every node's API. The
addresses exist only inside these namespaces: nothing is added to the machine's own
namespace and nothing leaves the machine. `<pid>` is the harness's process id, so the
leftovers of a harness that died are recognised (`leftovers`, `clean`) and a second run
beside a live one is left alone.

Faults:
- a link taken down (`link`): the node's `eth0`, as if its cable were pulled;
- a cut between two nodes (`cut`, `mend`): a blackhole route to the other's address in
  each of the two namespaces, so any partition shape is a set of cut pairs (a bridge
  node that sees both sides is one whose pairs are not cut). There is no nftables or
  iptables here; a route is enough, as every peer is one address on one subnet;
- a slow link (`throttle`): `tc` `tbf` on both ends of the node's veth pair, so both
  directions are limited. The kernel here has no `netem`: the chaos run emulates no
  latency or loss beyond what a full `tbf` queue adds;
- a full disk (`fill`, `empty`): each node's data directory lives on its own small tmpfs
  (`mount_tmpfs`), which a ballast file fills to the last byte.

The harness thread enters the hub namespace (`Hosts.entered`, setns(2) on the calling
thread) for its HTTP clients; the node processes are started with `ip netns exec`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

PREFIX = "erch"
"""The first part of every namespace and tmpfs name a chaos run makes."""
SUBNET = "10.77.0"
HUB_HOST = 254
MAX_NODES = 200
NODE_LINK = "eth0"
BRIDGE = "br0"
BALLAST = "ballast"
LINK_EMULATION = (
    "slow links are tbf bandwidth limits only: this kernel has no netem, and no latency or"
    " loss is emulated beyond what a full tbf queue adds (delay, then tail drops)"
)
_CLONE_NEWNET = 0x40000000


class HostsError(RuntimeError):
    """A command that sets up or changes the hosts failed (the message has its output)."""


def run(*args: str) -> str:
    """Run a command (ip, tc, mount); its output, or HostsError with its error output."""
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HostsError(f"{' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def preflight(tc: bool = False) -> str | None:
    """Why this machine cannot make the hosts, or None when it can."""
    if os.geteuid() != 0:
        return "echorand chaos needs root: it makes network namespaces, veth pairs and tmpfs"
    for tool in ("ip", "mount", "umount", *(("tc",) if tc else ())):
        if shutil.which(tool) is None:
            return f"the command {tool!r} is not installed (iproute2, util-linux)"
    probe = f"{PREFIX}-{os.getpid()}-probe"
    try:
        run("ip", "netns", "add", probe)
    except HostsError as e:
        return f"cannot make a network namespace: {e}"
    try:
        run("ip", "netns", "delete", probe)
    except HostsError as e:
        return f"cannot delete a network namespace: {e}"
    return None


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise HostsError(f"setns: {os.strerror(errno)}")


class Hosts:
    """The namespaces, links and bridge of one run (`create`, then `destroy`)."""

    def __init__(self, nodes: int, owner: int | None = None) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise ValueError(f"nodes must be in 1..{MAX_NODES}, got {nodes}")
        self.nodes = nodes
        self.run_name = f"{PREFIX}-{os.getpid() if owner is None else owner}"
        self.hub = f"{self.run_name}-hub"
        self._made: list[str] = []
        self._mounts: list[Path] = []

    # --- names -------------------------------------------------------------------

    def namespace(self, k: int) -> str:
        return f"{self.run_name}-n{k}"

    def address(self, k: int) -> str:
        return f"{SUBNET}.{k + 1}"

    @property
    def hub_address(self) -> str:
        return f"{SUBNET}.{HUB_HOST}"

    def hub_link(self, k: int) -> str:
        """The hub's end of node k's veth pair."""
        return f"v{k}"

    def exec_prefix(self, k: int) -> list[str]:
        """What runs a command inside node k's namespace."""
        return ["ip", "netns", "exec", self.namespace(k)]

    # --- life cycle --------------------------------------------------------------

    def create(self) -> None:
        """Make the hub with its bridge, and each node's namespace, veth pair and address."""
        hub = self.hub
        run("ip", "netns", "add", hub)
        self._made.append(hub)
        run("ip", "-n", hub, "link", "set", "lo", "up")
        run("ip", "-n", hub, "link", "add", BRIDGE, "type", "bridge")
        run("ip", "-n", hub, "addr", "add", f"{self.hub_address}/24", "dev", BRIDGE)
        run("ip", "-n", hub, "link", "set", BRIDGE, "up")
        for k in range(self.nodes):
            ns = self.namespace(k)
            run("ip", "netns", "add", ns)
            self._made.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run(
                "ip", "link", "add", NODE_LINK, "netns", ns, "type", "veth",
                "peer", "name", self.hub_link(k), "netns", hub,
            )  # fmt: skip
            run("ip", "-n", hub, "link", "set", self.hub_link(k), "master", BRIDGE, "up")
            run("ip", "-n", ns, "addr", "add", f"{self.address(k)}/24", "dev", NODE_LINK)
            run("ip", "-n", ns, "link", "set", NODE_LINK, "up")

    def destroy(self) -> list[str]:
        """Kill what runs in the namespaces, delete them (their links go with them) and
        unmount the tmpfs of this run; what was removed."""
        removed = [f"tmpfs {path}" for path in self._mounts if unmount(path)]
        self._mounts.clear()
        for ns in reversed(self._made):
            _kill_inside(ns)
            with contextlib.suppress(HostsError):
                run("ip", "netns", "delete", ns)
                removed.append(f"netns {ns}")
        self._made.clear()
        return removed

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the calling thread in the hub namespace (threads it starts inherit it)."""
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/run/netns/{self.hub}", os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield
            finally:
                _setns(original)
        finally:
            os.close(original)

    # --- faults ------------------------------------------------------------------

    def link(self, k: int, up: bool) -> None:
        """Take node k's link down (as if unplugged) or up again."""
        run("ip", "-n", self.namespace(k), "link", "set", NODE_LINK, "up" if up else "down")

    def cut(self, a: int, b: int) -> None:
        """No packet between nodes a and b (either way); the rest of the network is intact."""
        run("ip", "-n", self.namespace(a), "route", "add", "blackhole", f"{self.address(b)}/32")
        run("ip", "-n", self.namespace(b), "route", "add", "blackhole", f"{self.address(a)}/32")

    def mend(self, a: int, b: int) -> None:
        """Undo `cut(a, b)`."""
        run("ip", "-n", self.namespace(a), "route", "del", "blackhole", f"{self.address(b)}/32")
        run("ip", "-n", self.namespace(b), "route", "del", "blackhole", f"{self.address(a)}/32")

    def throttle(self, k: int, kbit: int) -> None:
        """Limit node k's link to `kbit` kbit/s each way (tbf: 16 KiB burst, 2 s queue)."""
        shape = ["root", "tbf", "rate", f"{kbit}kbit", "burst", "16kb", "latency", "2s"]
        run("tc", "-n", self.namespace(k), "qdisc", "replace", "dev", NODE_LINK, *shape)
        run("tc", "-n", self.hub, "qdisc", "replace", "dev", self.hub_link(k), *shape)

    def unthrottle(self, k: int) -> None:
        run("tc", "-n", self.namespace(k), "qdisc", "del", "dev", NODE_LINK, "root")
        run("tc", "-n", self.hub, "qdisc", "del", "dev", self.hub_link(k), "root")

    def mount_disk(self, k: int, path: Path, size: int) -> None:
        """Node k's disk: a tmpfs of `size` bytes at `path`, named after the run."""
        mount_tmpfs(path, size, f"{self.namespace(k)}-disk")
        self._mounts.append(path)


# --- disks -----------------------------------------------------------------------------


def mount_tmpfs(path: Path, size: int, source: str) -> None:
    """Mount a tmpfs of `size` bytes at `path` (made if missing); `source` names it in
    /proc/mounts (how `leftovers` finds it)."""
    path.mkdir(parents=True, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", source, str(path))


def unmount(path: Path) -> bool:
    """Unmount `path` (lazily if busy); whether something was mounted there."""
    try:
        run("umount", str(path))
    except HostsError:
        try:
            run("umount", "-l", str(path))
        except HostsError:
            return False
    return True


def fill(path: Path) -> int:
    """Fill the file system of directory `path` with a ballast file, to the last byte; the
    ballast's size."""
    ballast = path / BALLAST
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        stats = os.fstatvfs(fd)
        free = stats.f_bavail * stats.f_frsize
        if free:
            with contextlib.suppress(OSError):
                os.posix_fallocate(fd, os.fstat(fd).st_size, free)
        for size in (1 << 16, 512, 1):  # whatever fallocate left
            with contextlib.suppress(OSError):
                while os.write(fd, bytes(size)) > 0:
                    pass
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def empty(path: Path) -> None:
    """Remove the ballast of `fill(path)`."""
    (path / BALLAST).unlink(missing_ok=True)


# --- leftovers ---------------------------------------------------------------------------


def owner_alive(pid: int) -> bool:
    """Whether the run's harness, process `pid`, may still be alive. (A process that took
    over its id keeps its leftovers until it exits too: never the other way round.)"""
    return Path(f"/proc/{pid}").exists()


def _owner(name: str) -> int | None:
    parts = name.split("-")
    if len(parts) < 3 or parts[0] != PREFIX or not parts[1].isdigit():
        return None
    return int(parts[1])


def _kill_inside(ns: str) -> None:
    """SIGKILL every process in namespace `ns` (stopped ones too)."""
    try:
        pids = run("ip", "netns", "pids", ns).split()
    except HostsError:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def leftovers() -> tuple[list[str], list[Path]]:
    """The namespaces and tmpfs mount points of chaos runs whose harness is gone."""
    namespaces = []
    with contextlib.suppress(HostsError, FileNotFoundError):
        for line in run("ip", "netns", "list").splitlines():
            name = line.split()[0] if line.strip() else ""
            owner = _owner(name)
            if owner is not None and not owner_alive(owner):
                namespaces.append(name)
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            source, target, fstype = line.split()[:3]
            owner = _owner(source)
            if fstype == "tmpfs" and owner is not None and not owner_alive(owner):
                mounts.append(Path(target.replace("\\040", " ")))
    return namespaces, mounts


def clean() -> list[str]:
    """Remove what runs whose harness died left behind: processes inside their namespaces,
    the namespaces (with their links and bridge) and their tmpfs; what was removed."""
    namespaces, mounts = leftovers()
    removed = []
    for ns in namespaces:
        _kill_inside(ns)
    for path in mounts:
        if unmount(path):
            removed.append(f"tmpfs {path}")
    for ns in namespaces:
        with contextlib.suppress(HostsError):
            run("ip", "netns", "delete", ns)
            removed.append(f"netns {ns}")
    return removed
