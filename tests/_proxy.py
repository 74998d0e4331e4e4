"""A TCP proxy in the test process between two real node processes.

A node dials the proxy's port instead of its peer's; the proxy forwards every byte both
ways. The test owns the link: it can record the frames each side sends, cut the link (every
connection closed, new ones closed at once: the nodes see a partition and redial with
backoff), restore it, and delay what it forwards in one direction (a slow path, the
"adversarial timing" of a partition that heals unevenly). Directions are named from the
dialing node: "up" is what it sends (to the target), "down" what it receives.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections import defaultdict

from echorand.wire.messages import DecodeError, decode, split_frames

DIRECTIONS = ("up", "down")


class _Pipe:
    """One direction of one connection: a reader thread queues the chunks with the time
    they are due, a writer thread sends them then (in order). The second pipe of a
    connection to finish closes its sockets."""

    def __init__(
        self, proxy: Proxy, src: socket.socket, dst: socket.socket, direction: str, done: list[int]
    ) -> None:
        self.proxy, self.src, self.dst, self.direction = proxy, src, dst, direction
        self.done = done
        self.chunks: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
        self.last_due = 0.0
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        try:
            while chunk := self.src.recv(1 << 16):
                due = max(time.monotonic() + self.proxy.delay[self.direction], self.last_due)
                self.last_due = due
                self.chunks.put((due, chunk))
                if self.proxy.record:
                    buffer = self.proxy.note(self.direction, buffer + chunk)
        except OSError:
            pass
        finally:
            self.chunks.put(None)

    def _write(self) -> None:
        try:
            while (item := self.chunks.get()) is not None:
                due, chunk = item
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                self.dst.sendall(chunk)
        except OSError:
            pass
        finally:
            self.proxy.hang_up(self.src, self.dst)
            with self.proxy.lock:
                self.done[0] += 1
                last = self.done[0] == 2
            if last:
                self.src.close()
                self.dst.close()


class Proxy:
    """Listens on 127.0.0.1:`port` and forwards each connection to `target`."""

    def __init__(self, target: tuple[str, int], *, record: bool = False) -> None:
        self.target = target
        self.record = record
        self.sent: dict[str, list[bytes]] = defaultdict(list)
        """With `record`: the frames sent in each direction."""
        self.delay = dict.fromkeys(DIRECTIONS, 0.0)
        """Seconds each direction holds what it forwards (chunks already queued keep theirs)."""
        self.connections = 0
        """Connections forwarded so far."""
        self.lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._open = True
        self._closed = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._open:
                client.close()  # cut: the dialer sees the link fail and redials later
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self._live.update((client, upstream))
                self.connections += 1
            done = [0]
            _Pipe(self, client, upstream, "up", done)
            _Pipe(self, upstream, client, "down", done)

    def hang_up(self, *socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with self.lock:
                self._live.discard(s)

    def note(self, direction: str, buffer: bytes) -> bytes:
        """Record the whole frames at the start of `buffer`; the rest, to complete."""
        try:
            frames, used = split_frames(buffer)
        except DecodeError:
            return b""  # not our framing: forwarded all the same
        with self.lock:
            self.sent[direction].extend(bytes(f) for f in frames)
        return buffer[used:]

    def cut(self) -> None:
        """Close every connection and refuse new ones until `restore`."""
        self._open = False
        with self.lock:
            live = list(self._live)
        self.hang_up(*live)

    def restore(self, **delay: float) -> None:
        """Forward again, each direction held `delay[direction]` seconds (0 unless given)."""
        self.set_delay(**{d: delay.get(d, 0.0) for d in DIRECTIONS})
        self._open = True

    def set_delay(self, **delay: float) -> None:
        for direction, seconds in delay.items():
            if direction not in DIRECTIONS or seconds < 0:
                raise ValueError(f"delay: {direction}={seconds}")
            self.delay[direction] = seconds

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self.cut()

    def messages(self, direction: str) -> list[object]:
        """The recorded frames of `direction`, decoded (those that decode)."""
        out = []
        with self.lock:
            frames = list(self.sent[direction])
        for frame in frames:
            try:
                out.append(decode(frame))
            except DecodeError:
                continue
        return out
