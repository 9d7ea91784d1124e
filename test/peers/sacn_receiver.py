"""A loopback E1.31 receiver for tests: every datagram on 127.0.0.1:5568, kept in arrival order and decoded by the
``sacn`` library's own parsers (``sacn.DataPacket.make_data_packet``, ``UniverseDiscoveryPacket``).

E1.31 fixes the port, so every sACN test on the machine needs 5568. :func:`port_lock` is an exclusive lock on
the port (``fcntl.flock`` on :data:`LOCK_FILE`): the receiver takes it first, so concurrent test runs wait for
each other instead of stealing each other's packets, and binds without SO_REUSEADDR/SO_REUSEPORT, so a conflict
is an error rather than silent packet stealing. A test that needs the port free of listeners (a destination that
refuses) or runs another receiver on it (the stock ``sacn.sACNreceiver``) holds :func:`port_lock` itself.

The thread only stores the datagrams; they are decoded when read (:attr:`SacnReceiver.packets`), so a burst of
packets is not dropped while the library's slow parser runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import socket
import threading
import time

import sacn

PORT = 5568
LOCK_FILE = f"/tmp/lumina-udp-{PORT}.lock"
LOCK_TIMEOUT_S = 120.0
RECEIVE_BUFFER = 4 << 20  # bytes; a burst of a few thousand packets fits


@contextlib.contextmanager
def port_lock(timeout: float = LOCK_TIMEOUT_S):
    """Hold the machine-wide lock of UDP port 5568 (waiting up to ``timeout`` s, then TimeoutError)."""
    handle = open(LOCK_FILE, "a")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"UDP port {PORT} stayed locked by another test for {timeout:g} s ({LOCK_FILE}); "
                        "another sACN test or bench is running"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        handle.close()  # releases the lock


class SacnReceiver:
    """Use as a context manager: ``with SacnReceiver() as receiver: ... receiver.packets``.

    Attributes
    ----------
    datagrams : list of bytes
        Every datagram received, in arrival order.
    packets : list of sacn.DataPacket
        The E1.31 data packets among them (universe, sequence, priority, sourceName, option_StreamTerminated,
        dmxData ...), in arrival order.
    discovery : list of sacn.UniverseDiscoveryPacket
        The universe discovery packets among them.
    undecodable : int
        Datagrams that are neither.
    """

    def __init__(self, lock_timeout: float = LOCK_TIMEOUT_S):
        self.lock_timeout = lock_timeout
        self.datagrams: list[bytes] = []
        self._packets: list = []
        self._discovery: list = []
        self._data_rows: list[int] = []  # index in datagrams of each data packet
        self._undecodable = 0
        self._decoded = 0
        self._mutex = threading.Lock()
        self._thread = None

    def __enter__(self):
        self._lock = port_lock(self.lock_timeout)
        self._lock.__enter__()
        self.socket = None
        try:
            self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            self.socket.bind(("127.0.0.1", PORT))  # no SO_REUSEADDR: a second receiver is an error
            self.socket.settimeout(0.05)
        except BaseException:
            if self.socket is not None:
                self.socket.close()
            self._lock.__exit__(None, None, None)
            raise
        self._running = True
        self._thread = threading.Thread(target=self._receive, name="sacn test receiver", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.socket.close()
        self._lock.__exit__(None, None, None)

    def _receive(self):
        while self._running:
            try:
                data = self.socket.recv(2048)
            except TimeoutError:
                continue
            with self._mutex:
                self.datagrams.append(data)

    def _decode(self):
        with self._mutex:
            pending = self.datagrams[self._decoded :]
            start, self._decoded = self._decoded, len(self.datagrams)
        for k, data in enumerate(pending, start):
            try:
                self._packets.append(sacn.DataPacket.make_data_packet(data))
                self._data_rows.append(k)
                continue
            except (TypeError, ValueError):
                pass
            try:
                self._discovery.append(sacn.UniverseDiscoveryPacket.make_universe_discovery_packet(data))
            except (TypeError, ValueError):
                self._undecodable += 1

    @property
    def packets(self) -> list:
        self._decode()
        return list(self._packets)

    @property
    def discovery(self) -> list:
        self._decode()
        return list(self._discovery)

    @property
    def undecodable(self) -> int:
        self._decode()
        return self._undecodable

    def of(self, universe: int) -> list:
        """The data packets of ``universe`` so far."""
        return [p for p in self.packets if p.universe == universe]

    def raw_of(self, universe: int) -> list[bytes]:
        """The datagrams of the data packets of ``universe`` so far (what was on the wire, byte for byte)."""
        self._decode()
        return [
            self.datagrams[k] for k, p in zip(self._data_rows, self._packets, strict=True) if p.universe == universe
        ]

    def wait(self, predicate, timeout: float, what: str = "packets") -> None:
        """Poll ``predicate()`` until it is true; AssertionError naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.01)

    def settle(self, quiet: float = 0.1, timeout: float = 5.0) -> None:
        """Wait until no datagram has come for ``quiet`` s (so a count is final)."""
        deadline = time.monotonic() + timeout
        count, since = len(self.datagrams), time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                raise AssertionError(f"datagrams still arriving after {timeout} s")
            time.sleep(0.01)
            if len(self.datagrams) != count:
                count, since = len(self.datagrams), time.monotonic()
