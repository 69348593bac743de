"""NTPv4 (RFC 5905) sans-IO: packet codec, client source, source selection and server.

Pure modules: no sockets, no clocks. Time comes in as ``now`` (local CLOCK_MONOTONIC ns).
"""
