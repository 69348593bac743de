"""netclock: slave CLOCK_MONOTONIC to a PTP or NTP master without touching kernel clocks."""

__version__ = "0.1.0.dev0"
