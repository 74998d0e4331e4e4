"""A node stops within a bounded time on SIGTERM, whatever its connections are doing.

Node 1 of a 2-process devnet also dials a black hole (a listening socket whose accept queue
is full: the connect never completes, so a redial is always caught mid-connect), and holds
a connection that never said hello, one with half a frame, and a proven peer that never
reads. SIGTERM must end the process with exit code 0 within a generous deadline, its ledger
closed and intact, three times in a row.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from _helpers import DEADLINE, stop_cleanly, tip, until
from attack import connect, frames, join

from echorand.ledger.genesis import Genesis
from echorand.ledger.ledger import Ledger
from echorand.tools.devnet import Devnet
from echorand.wire.messages import GcProposal

STOP_DEADLINE = 30.0
"""Seconds a SIGTERM may take at most (the node's own bound is far lower: a few parts of
STOP_TIMEOUT and close_timeout each)."""


@pytest.fixture
def black_hole() -> Iterator[tuple[str, int]]:
    """An address where a connect hangs: a socket listening with a full accept queue."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = socket.create_connection(server.getsockname(), timeout=5)
    try:
        yield server.getsockname()
    finally:
        filler.close()
        server.close()


@pytest.fixture
def devnet(
    tmp_path_factory: pytest.TempPathFactory, black_hole: tuple[str, int]
) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("stop"), nodes=2, accounts=8, seed="test-stop")
    net.create()
    config = net.config_path(1)
    host, port = black_hole
    text = config.read_text().replace("peers = [", f'peers = ["{host}:{port}", ', 1)
    config.write_text(text)
    with net:
        net.start()
        net.wait_ready(DEADLINE)
        yield net
        stop_cleanly(net)


def _busy_connections(net: Devnet) -> list[socket.socket]:
    """Connections to node 1 in every state but an idle proven one."""
    silent = connect(net, 1, "127.0.0.51")  # never says hello
    half = connect(net, 1, "127.0.0.52")
    half.sendall((111).to_bytes(4, "big") + b"\x20" * 50)  # half a hello
    deaf = join(net, 1, "127.0.0.53")  # proven, never reads
    deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    deaf.sendall(frames(*[GcProposal(tip(net, 1) + 5, 2, 0, bytes(32), 0, bytes(64))] * 3))
    return [silent, half, deaf]


def test_a_node_stops_within_a_bounded_time_whatever_its_connections_do(devnet: Devnet) -> None:
    for attempt in range(3):
        until(lambda a=attempt: tip(devnet, 1) >= 2 * (a + 1), "blocks at node 1", devnet)
        socks = _busy_connections(devnet)
        proc = devnet.procs[1]
        assert proc is not None
        time.sleep(0.3)  # some redials of the black hole under way
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"attempt {attempt}: no exit {STOP_DEADLINE} s after SIGTERM")
        took = time.monotonic() - start
        devnet.procs[1] = None
        for s in socks:
            s.close()
        assert code == 0, f"attempt {attempt}: exit code {code}"
        log = devnet.log_path(1).read_text(errors="replace")
        assert log.count("stopped at round") == attempt + 1, log[-2000:]
        genesis = Genesis.load(devnet.directory / "genesis")
        ledger = Ledger.open(devnet.directory / "node-1" / "data", genesis)
        try:
            ledger.check_store()
        finally:
            ledger.close()
        print(f"attempt {attempt}: stopped in {took:.2f} s")
        devnet.start_node(1)
        devnet.wait_ready(DEADLINE, nodes=iter([1]))
