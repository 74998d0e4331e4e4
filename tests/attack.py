"""An attacker for the tests: raw peers of a devnet's real node processes, and the yardsticks.

The attacker speaks the wire protocol by hand from its own loopback address (127.0.0.x, so
that a ban of it spares the devnet's nodes, which all use 127.0.0.1). Each attack test
measures, at one node, the blocks committed in a quiet window and in a window under
attack, and the node's RSS (from /proc) during the attack, and checks that the attacker
ends disconnected or banned. No timed assertion: the windows only count blocks, and every
wait is a generous deadline.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from _helpers import tip

from echorand.net.network import PROTOCOL_VERSION
from echorand.net.peer import Handshake
from echorand.tools.devnet import Devnet
from echorand.wire.crypto import Keypair
from echorand.wire.messages import Hello, HelloProof, Message, decode, frame

WINDOW = 2.5
"""Seconds of each measured window (quiet, then under attack)."""
FRACTION = 0.2
"""Blocks under attack, at least, as a fraction of the quiet window's: generous, since the
machine is shared and the attacker runs on the same two cores."""
RSS_CEILING = 1 << 30
"""A node's resident memory under any attack (docs/protocol.md §12, "Memory")."""


def rss(net: Devnet, k: int) -> int:
    """Node k's resident set size in bytes (VmRSS of /proc/PID/status)."""
    proc = net.procs[k]
    assert proc is not None
    with open(f"/proc/{proc.pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclass
class Window:
    """Blocks committed at a node during a window, and its highest RSS then."""

    blocks: int = 0
    peak_rss: int = 0


def window(net: Devnet, k: int, seconds: float = WINDOW) -> Window:
    out = Window()
    start = tip(net, k)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out.peak_rss = max(out.peak_rss, rss(net, k))
        time.sleep(0.1)
    out.blocks = tip(net, k) - start
    return out


def status(net: Devnet, k: int) -> dict:
    doc = net.status(k)
    assert doc is not None, f"node {k} does not answer"
    return doc


def banned(net: Devnet, k: int, host: str) -> bool:
    return host in status(net, k)["network"]["banned"]


def peer_keys(net: Devnet, k: int) -> set[str]:
    return {p["key"] for p in status(net, k)["network"]["peers"]}


def metric(net: Devnet, k: int, name: str, label: str | None = None) -> int:
    """A value of node k's /metrics (a labelled counter's by its reason)."""
    import urllib.request

    with urllib.request.urlopen(net.url(k, "/metrics"), timeout=10) as response:
        text = response.read().decode()
    key = f"echorand_{name}" + (f'{{reason="{label}"}}' if label is not None else "")
    for line in text.splitlines():
        if line.startswith(key + " "):
            return int(float(line.split()[-1]))
    return 0


# --- raw peers -----------------------------------------------------------------------


def connect(net: Devnet, k: int, source: str, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to node k's p2p port from `source` (nothing sent)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", net.p2p_ports[k]))
    return sock


def read_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def read_frame(sock: socket.socket) -> bytes:
    return read_exactly(sock, int.from_bytes(read_exactly(sock, 4), "big"))


def their_hello(sock: socket.socket) -> Hello:
    msg = decode(read_frame(sock))
    assert isinstance(msg, Hello), msg
    return msg


def handshake(
    net: Devnet, key: Keypair | None = None, *, tip: int = 0, outbound: bool = True
) -> Handshake:
    return Handshake(
        key or Keypair.generate(),
        net.genesis_hash,
        outbound=outbound,
        version=PROTOCOL_VERSION,
        tip=tip,
        port=1,
    )


def join(
    net: Devnet, k: int, source: str, *, key: Keypair | None = None, tip: int = 0
) -> socket.socket:
    """A peer of node k that proved its (fresh) key: the handshake done, nothing else."""
    sock = connect(net, k, source)
    ours = handshake(net, key, tip=tip)
    sock.sendall(frame(ours.hello()))
    theirs = their_hello(sock)
    sock.sendall(frame(ours.proof(theirs)))
    proof = decode(read_frame(sock))
    assert isinstance(proof, HelloProof) and ours.check(theirs, proof)
    return sock


def closed_by_peer(sock: socket.socket, timeout: float = 30.0) -> bool:
    """Read (and discard) until the node closes the connection; False at the timeout."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 16):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def send_all(sock: socket.socket, data: bytes) -> bool:
    """Send, False once the node has closed the connection."""
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def frames(*messages: Message) -> bytes:
    return b"".join(frame(m) for m in messages)


# --- an attack in the background -------------------------------------------------------


@dataclass
class Attack:
    """An attacker thread: `run(stop)` until `stop` is set; what it noted in `notes`."""

    run: Callable[[threading.Event, dict], None]
    notes: dict = field(default_factory=dict)
    error: BaseException | None = None


@contextlib.contextmanager
def attacking(run: Callable[[threading.Event, dict], None]) -> Iterator[Attack]:
    attack = Attack(run)
    stop = threading.Event()

    def body() -> None:
        try:
            run(stop, attack.notes)
        except BaseException as e:  # reported by the test
            attack.error = e

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    try:
        yield attack
    finally:
        stop.set()
        thread.join(60)
    if attack.error is not None:
        raise attack.error


def drain(sock: socket.socket, stop: threading.Event) -> bool:
    """Read what the node sends until it closes (True) or `stop` is set (False)."""
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            if not sock.recv(1 << 16):
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False
