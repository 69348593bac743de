"""Impure edge of netclock: sockets, kernel timestamps, clocks and waits.

* :mod:`netclock.platform.timestamping`: UDP sockets with kernel RX/TX stamps on asyncio.
* :mod:`netclock.platform.udp`: opening IPv4/IPv6 unicast/multicast sockets per interface.
* :mod:`netclock.platform.cmsg`: timestamping constants and pure cmsg parsers.
* :mod:`netclock.platform.clockmap`: CLOCK_REALTIME → CLOCK_MONOTONIC mapping.
"""
