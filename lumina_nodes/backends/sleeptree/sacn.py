"""E1.31 (streaming ACN, "sACN") output: one data packet per universe per frame, over UDP to port 5568.

The packet format comes from the ``sacn`` library: each universe's packet is built once with
:class:`sacn.DataPacket` and kept as a template; a frame then writes only the sequence number and the 512 slots
into one (universes, 638) byte buffer and sends each row from our own socket. The library's ``sACNsender`` is not
used to send because its own thread sends at its own rate (beating against the frame timer), can lose a change
made while it is mid-send until its 1 s keep-alive, keeps the process from exiting until stopped, always sends
its synchronisation packets to multicast, and checks the slots in a 512-step Python loop per packet (~56 us;
the 60 universes of 10 trees x 1,000 pixels at 40 Hz would spend 0.13 core on it).

Nothing leaves but the data packets to the configured destinations (unicast; 127.0.0.1 by default), unless
``multicast`` (each universe to its E1.31 group 239.255.<hi>.<lo>) or ``universe_discovery`` (E1.31 universe
discovery every 10 s) is asked for. :meth:`SacnLighting.close` terminates every stream as E1.31 specifies: three
packets with the Stream_Terminated option, so receivers let go at once instead of holding the last frame.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import uuid

import numpy as np
import sacn
from sacn.messages.data_packet import calculate_multicast_addr

from .base import LightingBackend, SendResult

PORT = 5568  # E1.31's UDP port
HEADER = 126  # bytes before the slots in a full data packet
SEQUENCE_OFFSET = 111
OPTIONS_OFFSET = 112
STREAM_TERMINATED = 0x40
TERMINATION_PACKETS = 3
DISCOVERY_PERIOD_S = 10.0  # E1.31 §4.3: E131_UNIVERSE_DISCOVERY_INTERVAL
DISCOVERY_GROUP = "239.255.250.214"  # universe 64214, E1.31's discovery universe
MAX_UNIVERSE = 63999


def source_cid(source_name: str) -> tuple:
    """The CID of a source: stable per source name, so a restarted controller is the same source to receivers."""
    return tuple(uuid.uuid5(uuid.NAMESPACE_URL, "lumina:sleeptree:" + source_name).bytes)


class SacnLighting(LightingBackend):
    """Parameters
    ----------
    universes : sequence of Universe
        The universes and the unicast address each is sent to (ignored with ``multicast``).
    bind_address : str
        Local IPv4 address the socket binds to (an ephemeral port: binding 5568 would loop unicast back to us).
    priority : int
        E1.31 priority, 0..200 (receivers follow the highest-priority source of a universe).
    source_name : str
        E1.31 source name, 1..63 bytes of UTF-8.
    multicast : bool
        Send each universe to its multicast group instead of its destination.
    universe_discovery : bool
        Announce the universes every 10 s (to the destinations, or to the discovery group with ``multicast``).
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
        _check_address("bind_address", bind_address, unicast=False)
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 200:
            raise ValueError(f"priority: must be a whole number in 0..200 (E1.31), got {priority!r}")
        encoded = str(source_name).encode("utf-8")
        if not isinstance(source_name, str) or not 1 <= len(encoded) <= 63:
            raise ValueError(f"source_name: must be 1..63 bytes of UTF-8, got {len(encoded)} bytes")
        for universe in self.universes:
            if isinstance(universe.number, bool) or not 1 <= universe.number <= MAX_UNIVERSE:
                raise ValueError(f"universe {universe.number!r}: must be in 1..{MAX_UNIVERSE}")
            if not multicast:
                _check_address(f"universe {universe.number} destination", universe.destination, unicast=True)
        self.multicast, self.universe_discovery = bool(multicast), bool(universe_discovery)
        self.source_name, self.priority = source_name, priority
        self.cid = source_cid(source_name)
        self.destinations = [
            (calculate_multicast_addr(u.number) if multicast else u.destination, PORT) for u in self.universes
        ]
        self.packets = np.array(
            [
                sacn.DataPacket(cid=self.cid, sourceName=source_name, universe=u.number, priority=priority).getBytes()
                for u in self.universes
            ],
            np.uint8,
        )
        self.sequence = np.zeros(len(self.universes), np.uint8)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.socket.bind((bind_address, 0))
            if multicast:
                self.socket.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 8)
                if bind_address != "0.0.0.0":
                    self.socket.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind_address))
        except OSError as error:
            self.socket.close()
            raise ValueError(f"bind_address {bind_address}: cannot bind: {error.strerror or error}") from None
        self.closed = False
        self.next_discovery = time.monotonic()

    def send(self, frames: np.ndarray) -> SendResult:
        if self.closed:
            return SendResult(0, tuple(range(len(self.universes))), ("closed",))
        self.packets[:, HEADER:] = self._check(frames)
        result = self._send_all()
        if self.universe_discovery and time.monotonic() >= self.next_discovery:
            self.next_discovery = time.monotonic() + DISCOVERY_PERIOD_S
            self._send_discovery()
        return result

    def _send_all(self) -> SendResult:
        self.packets[:, SEQUENCE_OFFSET] = self.sequence
        self.sequence += 1  # uint8: wraps 255 -> 0, as E1.31 sequence numbers do
        failed, errors = [], []
        for row, destination in enumerate(self.destinations):
            try:
                self.socket.sendto(self.packets[row], destination)
            except OSError as error:
                failed.append(row)
                text = f"{destination[0]}: {error.strerror or error}"
                errors.append(text)
                self.last_error[row] = text
                self.frames_failed[row] += 1
                self.failing[row] = True
                continue
            self.frames_sent[row] += 1
            self.failing[row] = False
        return SendResult(len(self.destinations) - len(failed), tuple(failed), tuple(errors))

    def _send_discovery(self) -> None:
        packets = sacn.UniverseDiscoveryPacket.make_multiple_uni_disc_packets(
            cid=self.cid, sourceName=self.source_name, universes=sorted(u.number for u in self.universes)
        )
        targets = [(DISCOVERY_GROUP, PORT)] if self.multicast else sorted(set(self.destinations))
        for packet in packets:
            data = bytes(packet.getBytes())
            for target in targets:
                try:
                    self.socket.sendto(data, target)
                except OSError:
                    pass  # discovery is advisory; the data packets' own failures are counted

    def close(self) -> None:
        if self.closed:
            return
        self.packets[:, OPTIONS_OFFSET] |= STREAM_TERMINATED
        for _ in range(TERMINATION_PACKETS):
            self._send_all()
        self.socket.close()
        self.closed = True


def _check_address(what: str, address: str, unicast: bool) -> None:
    try:
        parsed = ipaddress.IPv4Address(address)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: {address!r} is not an IPv4 address") from None
    if unicast and (parsed.is_multicast or address == "255.255.255.255" or parsed.is_unspecified):
        raise ValueError(f"{what}: {address} is not a unicast address (multicast needs multicast: true)")
