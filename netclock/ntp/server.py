"""NTP server (sans-IO): answer client requests from the shared time domain (RFC 5905 §9.2).

:class:`NtpServer` turns a request and its local receive stamp into a response. The served time
is whatever ``served_time(local_monotonic_ns) -> unix_ns`` says (the published calibration, or a
deliberately shifted system clock in tests); stratum, reference id, leap and root distance come
from a :class:`DisciplineState`. Nothing here reads a clock: the caller passes ``rx_ns`` (kernel
RX stamp), ``now`` (just before sending, used as the basic-mode transmit time) and later, through
:meth:`NtpServer.handle_tx_timestamp`, the response's real TX stamp.

* **Interleaved mode** (RFC 9769): the real TX time of every response is kept, keyed by the
  receive timestamp that response carried (receive timestamps are made unique). A request whose
  origin timestamp names a kept receive timestamp, and whose receive and transmit fields differ,
  is answered in interleaved mode: origin = the request's receive field, transmit = the kept TX
  time of that earlier response.
* **Rate limiting**: a token bucket per client address. A client over its limit gets a KoD RATE
  at most once per ``kod_interval_ns`` and nothing otherwise, so the server cannot be used to
  amplify traffic.
* **Basic-mode transmit time**: :meth:`NtpServer.restamp` rewrites it right before the send.
  The server learns how long a send takes (median of restamp time to the kernel TX stamp over
  the last responses) and adds that, so a basic-mode client sees nearly the real TX time.
* **Size**: a response is 48 bytes (plus a MAC when authenticated); a request is at least as
  long, so a response is never larger. Extension fields are not answered.
* **Authentication** (``keys``, :mod:`netclock.ntp.auth`): a request with a valid MAC is
  answered with a MAC under the same key. A MAC with an unknown key id is answered with a
  crypto-NAK (RFC 5905 §7.4); a wrong digest gets no answer at all (no oracle). Unauthenticated
  requests are answered unsigned unless ``require_auth`` is set, then dropped. Without keys
  authentication is off and MACs in requests are ignored (answered unsigned).
* **Access control** (``access``, :class:`AccessControl`): chrony-style ``allow``/``deny``
  subnets, checked first: a denied client costs no parsing and no MAC check. It gets nothing,
  or (``kod``) a KoD DENY at most once per ``kod_interval_ns``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from netclock.ntp import auth
from netclock.ntp.wire import (
    HEADER_SIZE,
    KISS_DENY,
    KISS_RATE,
    Leap,
    Mode,
    NtpPacket,
    ParseError,
)
from netclock.time import NS_PER_S, NtpShort, NtpTimestamp


@dataclass(frozen=True, slots=True)
class DisciplineState:
    """What the server says about its own synchronisation."""

    stratum: int = 1
    reference_id: bytes = b"LOCL"
    leap: Leap = Leap.NO_WARNING
    precision: int = -24
    root_delay_ns: int = 0
    root_dispersion_ns: int = 0
    #: local MONOTONIC ns of the last clock update (the reference timestamp), None = unknown.
    reference_mono_ns: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.stratum <= 16 or len(self.reference_id) != 4:
            raise ValueError("stratum 0..16 and a 4-byte reference id")


_REQUEST = struct.Struct("!Bxb21xQQQ")  # li/vn/mode, poll, origin, receive, transmit
_RESPONSE = struct.Struct("!BBbbII4sQQQQ")
_U64_MASK = (1 << 64) - 1

#: Responses whose send latency (restamp to kernel TX stamp) is tracked, and the largest used.
TX_LATENCY_WINDOW = 15
MAX_TX_LATENCY_NS = 1_000_000

UNSYNCHRONIZED = DisciplineState(stratum=16, reference_id=b"INIT", leap=Leap.UNSYNCHRONIZED)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Token bucket per client: ``burst`` requests, refilled one per ``interval_ns``."""

    interval_ns: int = NS_PER_S >> 4
    burst: int = 16
    kod_interval_ns: int = NS_PER_S
    max_clients: int = 4096


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(text: str) -> Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an address or subnet (e.g. 192.0.2.0/24, 2001:db8::/32)"
        ) from None


def _client_address(client: Hashable) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address of ``client`` (an address string or a socket address tuple), or None.
    IPv4-mapped IPv6 addresses count as IPv4; a scope id (``%eth0``) is ignored."""
    text = client[0] if isinstance(client, tuple) and client else client
    if not isinstance(text, str):
        return None
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True, slots=True)
class AccessControl:
    """Which clients the server answers (chrony's ``allow``/``deny``, ntpd's ``restrict``).

    * Every rule is a subnet (a bare address is a /32 or /128). The most specific rule (longest
      prefix) containing the client's address decides; between an ``allow`` and a ``deny`` of
      the same subnet, ``deny`` wins.
    * A client no rule covers is answered only when ``allow`` is empty: listing any ``allow``
      subnet turns the default to deny (serving at all is the ``[ntp] serve`` opt-in, where
      chrony needs an ``allow`` for it).
    * A client whose address is unknown or not IP is denied whenever any rule exists.
    * ``kod``: answer a denied request with a KoD DENY (like ntpd's ``restrict ... kod``)
      instead of silence.
    """

    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()
    kod: bool = False

    @classmethod
    def parse(cls, allow: str = "", deny: str = "", *, kod: bool = False) -> AccessControl:
        """Space- or comma-separated subnets; raises ValueError naming the bad one."""
        return cls(
            tuple(_network(w) for w in allow.replace(",", " ").split()),
            tuple(_network(w) for w in deny.replace(",", " ").split()),
            kod,
        )

    @property
    def active(self) -> bool:
        return bool(self.allow or self.deny)

    def permits(self, client: Hashable) -> bool:
        if not self.active:
            return True
        ip = _client_address(client)
        if ip is None:
            return False
        best = -1
        allowed = not self.allow
        for rules, verdict in ((self.allow, True), (self.deny, False)):
            for net in rules:
                if net.version == ip.version and ip in net and net.prefixlen >= best:
                    if net.prefixlen > best or not verdict:
                        allowed = verdict
                    best = net.prefixlen
        return allowed


@dataclass(frozen=True, slots=True)
class Response:
    """Bytes to send back. Report the real TX stamp with ``tx_token`` (None: not needed)."""

    data: bytes
    tx_token: int | None
    interleaved: bool = False
    kod: bool = False
    #: basic-mode transmit timestamp, which the sender may refresh just before sending
    #: (:meth:`NtpServer.restamp`); False for interleaved responses and KoDs.
    restampable: bool = False
    #: the key the response is signed with (restamp re-signs), None: unsigned.
    key: auth.SymmetricKey | None = None


@dataclass(slots=True)
class _Bucket:
    tokens: int  # in units of interval_ns
    last: int
    last_kod: int | None = None


@dataclass(slots=True)
class ServerCounters:
    received: int = 0
    responded: int = 0
    interleaved: int = 0
    dropped_bad: int = 0
    rate_limited: int = 0
    kod_sent: int = 0
    auth_ok: int = 0
    auth_failed: int = 0
    crypto_nak_sent: int = 0
    denied: int = 0
    deny_kod_sent: int = 0


class NtpServer:
    def __init__(
        self,
        served_time: Callable[[int], int],
        state: DisciplineState | Callable[[], DisciplineState],
        *,
        rate_limit: RateLimit | None = RateLimit(),
        xleave: bool = True,
        max_saved: int = 16384,
        keys: auth.Keyring | None = None,
        require_auth: bool = False,
        access: AccessControl | None = None,
    ) -> None:
        self.access = access if access is not None else AccessControl()
        self._deny_kods: OrderedDict[Hashable, int] = OrderedDict()
        self.keys: auth.Keyring = keys if keys is not None else {}
        self.require_auth = require_auth
        self._served = served_time
        self._state = state
        self.rate_limit = rate_limit
        self.xleave = xleave
        self._max_saved = max_saved
        # receive timestamp (u64) -> real TX time of the response that carried it (u64, 0=unknown)
        self._saved: OrderedDict[int, int] = OrderedDict()
        self._tokens: OrderedDict[int, int] = OrderedDict()  # tx_token -> receive u64
        self._next_token = 0
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self.counters = ServerCounters()
        self._header_cache: tuple[DisciplineState, int, int, int] | None = None
        # token -> local time the basic transmit timestamp was written (restamp)
        self._restamped: OrderedDict[int, int] = OrderedDict()
        self._tx_latencies: deque[int] = deque(maxlen=TX_LATENCY_WINDOW)
        #: median (real TX stamp - restamp time) of recent responses, added by :meth:`restamp`
        self.tx_latency_ns = 0

    @property
    def _kod_poll(self) -> int:
        """log2 s of the rate limit interval, rounded up: the poll a KoD RATE asks for."""
        interval = self.rate_limit.interval_ns if self.rate_limit is not None else NS_PER_S
        p = -7
        while p < 17 and (NS_PER_S << p if p >= 0 else NS_PER_S >> -p) < interval:
            p += 1
        return p

    def state(self) -> DisciplineState:
        return self._state() if callable(self._state) else self._state

    def respond(
        self, request: bytes, rx_ns: int, now: int, client: Hashable = None
    ) -> Response | None:
        """Answer ``request`` received at local MONOTONIC ``rx_ns``; ``now`` ≥ rx_ns is the
        local time just before sending. ``client`` keys rate limiting (the source address)."""
        c = self.counters
        c.received += 1
        if not self.access.permits(client):
            c.denied += 1
            return self._deny_kod(request, client, rx_ns) if self.access.kod else None
        if len(request) < HEADER_SIZE:
            c.dropped_bad += 1
            return None
        verdict = auth.AuthResult.NONE
        mac_key_id = 0
        if len(request) > HEADER_SIZE:
            try:  # validate the trailer (extension fields, MAC)
                parsed = NtpPacket.unpack(request)
            except ParseError:
                c.dropped_bad += 1
                return None
            if self.keys:  # no keys configured: authentication off, MACs are ignored
                verdict = auth.verify(request, self.keys, parsed)
            mac_key_id = parsed.mac.key_id if parsed.mac is not None else 0
        lvm, poll, org_u64, rec_u64, xmt_u64 = _REQUEST.unpack_from(request)
        version = (lvm >> 3) & 7
        if lvm & 7 != Mode.CLIENT or not 1 <= version <= 4:
            c.dropped_bad += 1
            return None
        key: auth.SymmetricKey | None = None
        if verdict is auth.AuthResult.OK:
            c.auth_ok += 1
            key = self.keys[mac_key_id]
        elif verdict is auth.AuthResult.UNKNOWN_KEY:
            c.auth_failed += 1
            c.crypto_nak_sent += 1
            xmt = NtpTimestamp.from_u64(xmt_u64)
            nak = NtpPacket(
                leap=Leap.UNSYNCHRONIZED, version=version, mode=Mode.SERVER, stratum=0,
                poll=min(max(poll, -7), 17), reference_id=b"CRYP", origin_ts=xmt,
            )
            return Response(auth.crypto_nak(nak.pack()), None)
        elif verdict is auth.AuthResult.BAD_MAC or self.require_auth:
            c.auth_failed += 1
            return None
        st = self.state()
        limited = self._over_limit(client, rx_ns)
        if limited is not None:
            c.rate_limited += 1
            if not limited:
                return None
            c.kod_sent += 1
            xmt = NtpTimestamp.from_u64(xmt_u64)
            kod = NtpPacket(
                leap=Leap.UNSYNCHRONIZED, version=version, mode=Mode.SERVER, stratum=0,
                poll=max(poll, self._kod_poll), precision=st.precision, reference_id=KISS_RATE,
                origin_ts=xmt, receive_ts=xmt, transmit_ts=xmt,
            )
            raw = kod.pack() if key is None else auth.sign(kod.pack(), key)
            return Response(raw, None, kod=True)
        rx_u64 = NtpTimestamp.from_unix_ns(self._served(rx_ns)).to_u64()
        while rx_u64 in self._saved or rx_u64 == 0:
            rx_u64 = (rx_u64 + 1) & _U64_MASK
        tx_u64 = NtpTimestamp.from_unix_ns(self._served(max(now, rx_ns))).to_u64()
        if (rx_u64 - tx_u64) & _U64_MASK < (1 << 63):
            tx_u64 = (rx_u64 + 1) & _U64_MASK  # transmit never before receive on the wire
        origin_u64 = xmt_u64
        interleaved = False
        if self.xleave and org_u64 and rec_u64 != xmt_u64 and self._saved.get(org_u64, 0):
            interleaved = True
            origin_u64 = rec_u64
            tx_u64 = self._saved[org_u64]
        head = self._header_cache
        if head is None or head[0] is not st:
            ref_u64 = 0
            if st.reference_mono_ns is not None:
                ref_u64 = NtpTimestamp.from_unix_ns(self._served(st.reference_mono_ns)).to_u64()
            head = (st, NtpShort.from_ns_clamped(st.root_delay_ns).raw,
                    NtpShort.from_ns_clamped(st.root_dispersion_ns).raw, ref_u64)
            self._header_cache = head
        data = _RESPONSE.pack(
            (int(st.leap) << 6) | (version << 3) | Mode.SERVER,
            st.stratum,
            min(max(poll, -7), 17),
            st.precision,
            head[1],
            head[2],
            st.reference_id,
            head[3],
            origin_u64,
            rx_u64,
            tx_u64,
        )
        if key is not None:
            data = auth.sign(data, key)
        assert len(data) <= len(request)
        token: int | None = None
        if self.xleave:
            token = self._next_token
            self._next_token += 1
            self._remember(rx_u64, token)
        c.responded += 1
        if interleaved:
            c.interleaved += 1
        return Response(data, token, interleaved=interleaved, restampable=not interleaved,
                        key=key)

    def restamp(self, response: Response, now: int) -> bytes:
        """The response with its transmit timestamp set to the served time of local ``now``
        (call right before sending, so the Python time spent building it is not counted as
        network delay). Interleaved responses and KoDs are returned unchanged."""
        data = response.data
        if not response.restampable:
            return data
        if response.tx_token is not None:
            self._restamped[response.tx_token] = now
            if len(self._restamped) > self._max_saved:
                self._restamped.popitem(last=False)
        rx_u64 = int.from_bytes(data[32:40], "big")
        tx_u64 = NtpTimestamp.from_unix_ns(self._served(now + self.tx_latency_ns)).to_u64()
        if (rx_u64 - tx_u64) % (1 << 64) < (1 << 63):
            tx_u64 = (rx_u64 + 1) % (1 << 64)
        head = data[:40] + tx_u64.to_bytes(8, "big")
        if response.key is not None:
            return auth.sign(head, response.key)
        return head + data[48:]

    def handle_tx_timestamp(self, token: int, tx_ns: int) -> None:
        """The response with ``token`` left at local MONOTONIC ``tx_ns``."""
        stamped_at = self._restamped.pop(token, None)
        if stamped_at is not None and 0 <= tx_ns - stamped_at <= MAX_TX_LATENCY_NS:
            self._tx_latencies.append(tx_ns - stamped_at)
            self.tx_latency_ns = sorted(self._tx_latencies)[len(self._tx_latencies) // 2]
        rx_u64 = self._tokens.pop(token, None)
        if rx_u64 is not None and rx_u64 in self._saved:
            self._saved[rx_u64] = NtpTimestamp.from_unix_ns(self._served(tx_ns)).to_u64()

    # -- internals ----------------------------------------------------------------------------

    def _deny_kod(self, request: bytes, client: Hashable, now: int) -> Response | None:
        """KoD DENY for a well-formed client request, at most once per kod interval per
        client (a spoofed source cannot turn the server into a reflector)."""
        if len(request) < HEADER_SIZE:
            return None
        lvm, poll, _org, _rec, xmt_u64 = _REQUEST.unpack_from(request)
        version = (lvm >> 3) & 7
        if lvm & 7 != Mode.CLIENT or not 1 <= version <= 4:
            return None
        interval = self.rate_limit.kod_interval_ns if self.rate_limit is not None else NS_PER_S
        last = self._deny_kods.get(client)
        if last is not None and now - last < interval:
            return None
        self._deny_kods[client] = now
        self._deny_kods.move_to_end(client)
        while len(self._deny_kods) > 4096:
            self._deny_kods.popitem(last=False)
        self.counters.deny_kod_sent += 1
        xmt = NtpTimestamp.from_u64(xmt_u64)
        kod = NtpPacket(
            leap=Leap.UNSYNCHRONIZED, version=version, mode=Mode.SERVER, stratum=0,
            poll=min(max(poll, -7), 17), reference_id=KISS_DENY,
            origin_ts=xmt, receive_ts=xmt, transmit_ts=xmt,
        )
        return Response(kod.pack(), None, kod=True)

    def _remember(self, rx_u64: int, token: int) -> None:
        self._saved[rx_u64] = 0
        self._tokens[token] = rx_u64
        while len(self._saved) > self._max_saved:
            self._saved.popitem(last=False)
        while len(self._tokens) > self._max_saved:
            self._tokens.popitem(last=False)

    def _over_limit(self, client: Hashable, now: int) -> bool | None:
        """None: serve. True: over the limit, send a KoD. False: over the limit, drop."""
        rl = self.rate_limit
        if rl is None or client is None:
            return None
        b = self._buckets.get(client)
        full = rl.burst * rl.interval_ns
        if b is None:
            b = _Bucket(full, now)
            self._buckets[client] = b
            if len(self._buckets) > rl.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        b.tokens = min(full, b.tokens + max(now - b.last, 0))
        b.last = now
        if b.tokens >= rl.interval_ns:
            b.tokens -= rl.interval_ns
            return None
        if b.last_kod is None or now - b.last_kod >= rl.kod_interval_ns:
            b.last_kod = now
            return True
        return False
