"""A loopback E1.31 receiver for tests: every datagram on 127.0.0.1:5568, decoded by the ``sacn`` library's own
parser (``sacn.DataPacket.make_data_packet``), kept in arrival order.

E1.31 fixes the port, so every sACN test on the machine needs 5568: the receiver takes an exclusive lock first,
so concurrent test runs wait for each other instead of stealing each other's packets, and binds without
SO_REUSEADDR, so a conflict is an error rather than silent packet stealing.
"""

import fcntl
import socket
import threading
import time

import sacn

PORT = 5568
LOCK_FILE = f"/tmp/lumina-udp-{PORT}.lock"


class SacnReceiver:
    """Use as a context manager: ``with SacnReceiver() as receiver: ... receiver.packets``."""

    def __init__(self, lock_timeout=180.0):
        self.lock_timeout = lock_timeout
        self.packets = []  # sacn.DataPacket, arrival order
        self.undecodable = 0
        self._lock = threading.Lock()

    def __enter__(self):
        self._lock_file = open(LOCK_FILE, "w")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"UDP port {PORT} stayed locked by another test ({LOCK_FILE})") from None
                time.sleep(0.1)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", PORT))
        self.socket.settimeout(0.1)
        self._running = True
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.socket.close()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

    def _receive(self):
        while self._running:
            try:
                data = self.socket.recv(2048)
            except TimeoutError:
                continue
            try:
                packet = sacn.DataPacket.make_data_packet(data)
            except (TypeError, ValueError):
                self.undecodable += 1
                continue
            with self._lock:
                self.packets.append(packet)

    def of(self, universe):
        """The packets of ``universe`` so far."""
        with self._lock:
            return [p for p in self.packets if p.universe == universe]

    def wait(self, predicate, timeout, what="packets"):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.02)
