"""Open UDP sockets for the timestamping layer: IPv4/IPv6, unicast or multicast, per interface.

:func:`open_udp` returns a plain bound ``socket.socket``; wrap it in
:class:`netclock.platform.timestamping.StampedSocket` to get stamps. Interface names are resolved
in the calling thread's network namespace.

Multicast: a socket that should *receive* multicast must be bound to the wildcard address (or the
group), not to a unicast address; pass ``host=""`` and ``multicast_groups=[...]``. Sending to a
group goes out of ``interface`` (IP_MULTICAST_IF / IPV6_MULTICAST_IF).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Sequence

#: IEEE 1588 Annex C/D default multicast groups and ports.
PTP_PRIMARY_V4 = "224.0.1.129"
PTP_PDELAY_V4 = "224.0.0.107"
PTP_PRIMARY_V6 = "ff0e::181"
PTP_PDELAY_V6 = "ff02::6b"
PTP_EVENT_PORT = 319
PTP_GENERAL_PORT = 320
NTP_PORT = 123

# Not all of these are exported by every Python build; values from linux/in.h, linux/in6.h.
IP_MULTICAST_IF = 32
IP_MULTICAST_TTL = 33
IP_MULTICAST_LOOP = 34
IP_ADD_MEMBERSHIP = 35
IP_TOS = 1
IPV6_MULTICAST_IF = 17
IPV6_MULTICAST_HOPS = 18
IPV6_MULTICAST_LOOP = 19
IPV6_JOIN_GROUP = 20
IPV6_V6ONLY = 26
IPV6_TCLASS = 67


def _family_of(host: str, groups: Sequence[str]) -> socket.AddressFamily:
    for value in (host, *groups):
        if value:
            return socket.AF_INET6 if ipaddress.ip_address(value).version == 6 else socket.AF_INET
    return socket.AF_INET


def interface_index(interface: str) -> int:
    """Index of a named interface (in the calling thread's namespace). Raises ``OSError``."""
    return socket.if_nametoindex(interface)


def join_multicast(
    sock: socket.socket, group: str, interface: str | None = None
) -> None:
    """Join ``group`` on ``interface`` (or the kernel's choice when ``None``)."""
    ifindex = interface_index(interface) if interface else 0
    addr = ipaddress.ip_address(group)
    if not addr.is_multicast:
        raise ValueError(f"{group} is not a multicast address")
    if addr.version == 4:
        mreqn = struct.pack("=4s4si", addr.packed, b"\0\0\0\0", ifindex)
        sock.setsockopt(socket.IPPROTO_IP, IP_ADD_MEMBERSHIP, mreqn)
    else:
        mreq6 = struct.pack("=16sI", addr.packed, ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq6)


def set_multicast_interface(sock: socket.socket, interface: str) -> None:
    """Send multicast out of ``interface``."""
    ifindex = interface_index(interface)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_IF, ifindex)
    else:
        mreqn = struct.pack("=4s4si", b"\0\0\0\0", b"\0\0\0\0", ifindex)
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_IF, mreqn)


def open_udp(
    host: str = "",
    port: int = 0,
    *,
    family: socket.AddressFamily | None = None,
    interface: str | None = None,
    bind_to_device: bool = False,
    multicast_groups: Sequence[str] = (),
    multicast_loop: bool = True,
    multicast_hops: int = 1,
    reuse_address: bool | None = None,
    dscp: int | None = None,
    rcvbuf: int | None = None,
) -> socket.socket:
    """A bound UDP socket (blocking mode untouched; StampedSocket makes it non-blocking).

    Parameters:
        host: local address to bind ("" = wildcard; needed to receive multicast).
        port: local port (0 = any).
        family: AF_INET or AF_INET6; inferred from ``host``/``multicast_groups`` when ``None``.
        interface: interface name: joins happen on it, multicast is sent out of it.
        bind_to_device: also ``SO_BINDTODEVICE`` to ``interface`` (needs CAP_NET_RAW on old
            kernels; since 5.7 unprivileged if the socket is not yet bound).
        multicast_groups: groups to join.
        multicast_loop: loop our own multicast back to local listeners.
        multicast_hops: TTL / hop limit of sent multicast.
        reuse_address: SO_REUSEADDR (default: on when joining groups).
        dscp: DSCP for sent packets (IP_TOS / IPV6_TCLASS = dscp << 2).
        rcvbuf: SO_RCVBUF in bytes.
    """
    fam = family if family is not None else _family_of(host, multicast_groups)
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        if fam == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_V6ONLY, 1)
        if reuse_address if reuse_address is not None else bool(multicast_groups):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if dscp is not None:
            if fam == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TCLASS, dscp << 2)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_TOS, dscp << 2)
        if bind_to_device:
            if not interface:
                raise ValueError("bind_to_device needs an interface")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        scope = interface_index(interface) if (interface and fam == socket.AF_INET6) else 0
        if fam == socket.AF_INET6:
            link_local = bool(host) and ipaddress.ip_address(host).is_link_local
            sock.bind((host or "::", port, 0, scope if link_local else 0))
        else:
            sock.bind((host or "0.0.0.0", port))
        if multicast_groups or interface:
            if fam == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_LOOP, int(multicast_loop))
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_HOPS, multicast_hops)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_LOOP, int(multicast_loop))
                sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_TTL, multicast_hops)
            if interface:
                set_multicast_interface(sock, interface)
        for group in multicast_groups:
            join_multicast(sock, group, interface)
    except BaseException:
        sock.close()
        raise
    return sock
