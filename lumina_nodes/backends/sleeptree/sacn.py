"""E1.31 (streaming ACN, "sACN") output: one data packet per universe per frame, over UDP to port 5568 (no rclpy).

The packet format comes from the ``sacn`` library: each universe's packet is built once with
:class:`sacn.DataPacket` and kept as a template; a frame then writes only the sequence byte and the 512 slots
into one (universes, 638) uint8 buffer and sends each row from our own sockets, bound to (bind_address, 0): an
ephemeral port, because a socket bound to 5568 receives the unicast packets it sends itself.

Why not the library's ``sACNsender``: its own thread sends at its own rate (aliasing against our frame timer); a
change made while it is mid-send can be lost until its 1 s keep-alive (``Output._changed`` is cleared after the
send); its non-daemon thread hangs the process at exit unless stopped; ``flush()`` always sends a multicast sync
packet; and ``DataPacket.dmxData`` checks the slots in a 512-step Python loop (~56 us per packet: 60 universes at
40 Hz would spend 0.13 of a core on it).

One socket per destination address, *connected* to (destination, 5568): a connected UDP socket is told of its
destination's ICMP errors, so a host or net that cannot be reached is counted and reported (ERROR, for
``failing_hold_s`` after the last failure) instead of being sent to silently. A host that answers "port
unreachable" (nothing listens for E1.31 there: a controller switched off, or no receiver on loopback, as in
``make run``) reports it on the next send, which the error stops; that packet is sent again at once, so every
frame still goes out, and the universe reads WARN "nothing listens there" for ``failing_hold_s``. A destination
that cannot be connected at all (no route; or bound to 127.0.0.1 and sending elsewhere: "Invalid argument") fails
every frame and is retried every frame; connecting sends nothing.

Nothing leaves but the data packets to the configured destinations (unicast; 127.0.0.1 by default), unless
``multicast`` (each universe to its E1.31 group 239.255.<hi>.<lo>) or ``universe_discovery`` (E1.31 universe
discovery every 10 s) is asked for. :meth:`SacnLighting.close` terminates every stream as E1.31 §6.2.6 specifies:
three packets with the Stream_Terminated option, so receivers let go at once instead of holding the last frame.
"""

from __future__ import annotations

import socket
import time
import uuid

import numpy as np
import sacn
from sacn.messages.data_packet import calculate_multicast_addr

from ...constants import DiagnosticLevel
from .base import SLOTS, LightingBackend, SendResult, Universe, ipv4, unicast_problem

PORT = 5568  # E1.31's UDP port (ACN_SDT_MULTICAST_PORT)
PACKET_BYTES = 638  # a data packet of 512 slots
HEADER = 126  # bytes before the slots: root, framing and DMP layers, and the start code (0)
SEQUENCE_OFFSET = 111
OPTIONS_OFFSET = 112
STREAM_TERMINATED = 0x40  # options bit 6
TERMINATION_PACKETS = 3  # E1.31 §6.2.6
DISCOVERY_PERIOD_S = 10.0  # E1.31 §4.3: E131_UNIVERSE_DISCOVERY_INTERVAL
DISCOVERY_GROUP = "239.255.250.214"  # universe 64214, E1.31's discovery universe
MULTICAST_TTL = 8  # the sacn library's default


def source_cid(source_name: str) -> tuple[int, ...]:
    """The 16-byte CID of a source: stable per source name, so a restarted controller is the same source to
    receivers."""
    return tuple(uuid.uuid5(uuid.NAMESPACE_URL, "lumina:sleeptree:" + source_name).bytes)


def destination_address(universe: Universe, multicast: bool) -> str:
    """Where ``universe`` is sent: its destination, or with ``multicast`` its E1.31 group 239.255.<hi>.<lo>."""
    return calculate_multicast_addr(universe.number) if multicast else universe.destination


class _Link:
    """One UDP socket, bound to (bind_address, 0) and connected to (address, 5568)."""

    def __init__(self, address: str, bind_address: str, multicast: bool):
        self.address = address
        self.rows: list[int] = []
        self.connected = False
        self.error = ""
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.socket.bind((bind_address, 0))
            if multicast:
                self.socket.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
                if bind_address != "0.0.0.0":
                    self.socket.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind_address))
        except OSError:
            self.socket.close()
            raise
        self.send = self.socket.send
        self.connect()

    def connect(self) -> bool:
        """Connect (no packet is sent); False, with :attr:`error` set, when there is no way there."""
        try:
            self.socket.connect((self.address, PORT))
        except OSError as error:
            self.error = self.describe(error)
            return False
        self.connected = True
        return True

    def describe(self, error: OSError) -> str:
        return f"{self.address}: {error.strerror or error}"


class SacnLighting(LightingBackend):
    """E1.31 output of ``universes``.

    Parameters
    ----------
    universes : sequence of Universe
        The universes and the unicast address each is sent to (ignored with ``multicast``).
    bind_address : str
        Local IPv4 address the sockets bind to, with an ephemeral port.
    priority : int
        E1.31 priority, 0..200 (a receiver follows the highest-priority source of a universe).
    source_name : str
        E1.31 source name, 1..63 bytes of UTF-8; it also names the source's CID (:func:`source_cid`).
    multicast : bool
        Send each universe to its multicast group 239.255.<hi>.<lo> instead of its destination.
    universe_discovery : bool
        Announce the universes every 10 s: to every destination, or with ``multicast`` to the discovery group.
    """

    name = "sacn"

    def __init__(
        self,
        universes,
        bind_address: str = "127.0.0.1",
        priority: int = 100,
        source_name: str = "Lumina SleepTrees",
        multicast: bool = False,
        universe_discovery: bool = False,
    ):
        super().__init__(universes)
        bind = ipv4("bind_address", bind_address)
        if bind.is_multicast or str(bind) == "255.255.255.255":
            raise ValueError(f"bind_address: {bind_address} is not a local unicast address")
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 200:
            raise ValueError(f"priority: must be a whole number in 0..200 (E1.31), got {priority!r}")
        if not isinstance(source_name, str):
            raise ValueError(f"source_name: must be a text, got {source_name!r}")
        size = len(source_name.encode("utf-8"))
        if not 1 <= size <= 63 or "\0" in source_name:
            raise ValueError(f"source_name: must be 1..63 bytes of UTF-8 without NUL, got {size} bytes")
        for flag, value in (("multicast", multicast), ("universe_discovery", universe_discovery)):
            if not isinstance(value, bool):
                raise ValueError(f"{flag}: must be true or false, got {value!r}")
        if not multicast:
            for universe in self.universes:
                problem = unicast_problem(ipv4("", universe.destination))
                if problem:
                    raise ValueError(f"universe {universe.number} destination: {universe.destination} is {problem}")
        self.bind_address, self.priority, self.source_name = bind_address, priority, source_name
        self.multicast, self.universe_discovery = multicast, universe_discovery
        self.cid = source_cid(source_name)
        #: the packets of the frame last sent, one row per universe
        self.packets = np.array(
            [
                sacn.DataPacket(cid=self.cid, sourceName=source_name, universe=u.number, priority=priority).getBytes()
                for u in self.universes
            ],
            np.uint8,
        )
        assert self.packets.shape == (len(self.universes), PACKET_BYTES)
        #: the sequence number of each universe's next packet (uint8: wraps 255 -> 0, as E1.31 counts)
        self.sequence = np.zeros(len(self.universes), np.uint8)
        self.addresses = [destination_address(u, multicast) for u in self.universes]
        self._links: dict[str, _Link] = {}
        try:
            for row, address in enumerate(self.addresses):
                if address not in self._links:
                    self._links[address] = _Link(address, bind_address, multicast)
                self._links[address].rows.append(row)
            self._discovery_links = []
            if universe_discovery:
                if multicast:
                    self._discovery_links = [_Link(DISCOVERY_GROUP, bind_address, True)]
                else:
                    self._discovery_links = list(self._links.values())
        except OSError as error:
            self._close_sockets()
            raise ValueError(f"bind_address {bind_address}: cannot bind: {error.strerror or error}") from None
        self._row_links = [self._links[address] for address in self.addresses]
        # per row: the socket's send and a view of the row (the buffer is patched in place; nothing is rebuilt)
        self._sends = [(self._row_links[row].send, memoryview(self.packets[row])) for row in range(len(self.addresses))]
        self._discovery_packets = [
            bytes(p.getBytes())
            for p in sacn.UniverseDiscoveryPacket.make_multiple_uni_disc_packets(
                cid=self.cid, sourceName=source_name, universes=sorted(u.number for u in self.universes)
            )
        ]
        self.next_discovery = time.monotonic()
        self.discovery_sent = 0
        self.discovery_failed = 0
        self.discovery_error = ""
        self.discovery_failing = False  # the last announcement failed somewhere

    def destination_of(self, row: int) -> str:
        return self.addresses[row]

    def send(self, frames: np.ndarray) -> SendResult:
        if self.closed:
            return self.refuse("closed", count=False)
        problem = self.frame_problem(frames)
        if problem:
            return self.refuse(problem)
        self._stage(frames)
        result = self._transmit()
        if self.universe_discovery and time.monotonic() >= self.next_discovery:
            self.next_discovery = time.monotonic() + DISCOVERY_PERIOD_S
            self._discover()
        return result

    def _stage(self, frames: np.ndarray | None) -> None:
        """Write the slots (unless None: keep the last frame's) and the sequence numbers into the packets."""
        if frames is not None:
            self.packets[:, HEADER : HEADER + SLOTS] = frames
        self.packets[:, SEQUENCE_OFFSET] = self.sequence
        self.sequence += 1

    def _transmit(self, count: bool = True) -> SendResult:
        """Send every row; failures are counted (``count``) and reported, never raised."""
        for link in self._links.values():
            if not link.connected:
                link.connect()
        failed, errors = [], []
        for row, (send, packet) in enumerate(self._sends):
            try:
                try:
                    send(packet)
                except ConnectionRefusedError as error:
                    # an earlier packet's ICMP port unreachable, reported on this send (which it stopped): the
                    # host is there but nothing listens for E1.31 (a controller off, or no receiver on
                    # loopback). Not a failure of this frame: send it again, and say so (WARN).
                    link = self._row_links[row]
                    self.unheard_at[link.rows] = time.monotonic()
                    for r in link.rows:
                        self.unheard_error[r] = f"{link.describe(error)} (port unreachable)"
                    send(packet)
            except OSError as error:
                link = self._row_links[row]
                # not connected: the send fails with EDESTADDRREQ; the reason is the connect's
                link.error = link.describe(error) if link.connected else link.error
                failed.append(row)
                errors.append(link.error)
        if count:
            self.frames_sent += 1
            if failed:
                self.frames_sent[failed] -= 1
                self.frames_failed[failed] += 1
                self.failing[:] = False
                for link in {self._row_links[row] for row in failed}:
                    # the destination fails: a refusal reported on one packet is about another one sent there
                    self.mark_failing(link.rows, link.error)
            elif self.failing.any():
                self.failing[:] = False
        return SendResult(len(self._sends) - len(failed), len(failed), tuple(errors), tuple(failed))

    def _discover(self) -> None:
        self.discovery_failing = False
        for link in self._discovery_links:
            for data in self._discovery_packets:
                try:
                    link.send(data)
                    self.discovery_sent += 1
                except OSError as error:
                    self.discovery_failed += 1
                    self.discovery_error = link.describe(error)
                    self.discovery_failing = True

    def diagnostics(self):
        statuses = super().diagnostics()
        if self.universe_discovery:
            targets = ", ".join(link.address for link in self._discovery_links)
            statuses.append(
                (
                    DiagnosticLevel.WARN if self.discovery_failing else DiagnosticLevel.OK,
                    "universe discovery",
                    f"announcement fails: {self.discovery_error}"
                    if self.discovery_failing
                    else f"every {DISCOVERY_PERIOD_S:g} s to {targets}",
                    {
                        "packets_sent": self.discovery_sent,
                        "packets_failed": self.discovery_failed,
                        "last_error": self.discovery_error,
                    },
                )
            )
        return statuses

    def close(self) -> None:
        """Terminate every stream (three packets with Stream_Terminated, the last frame's slots), then close the
        sockets. Idempotent."""
        if self.closed:
            return
        self.packets[:, OPTIONS_OFFSET] |= STREAM_TERMINATED
        for _ in range(TERMINATION_PACKETS):
            self._stage(None)
            self._transmit(count=False)
        self._close_sockets()
        self.closed = True

    def _close_sockets(self) -> None:
        for link in [*self._links.values(), *getattr(self, "_discovery_links", [])]:
            link.socket.close()
