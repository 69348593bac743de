"""IEEE 1588-2019 (PTP v2.1) ordinary clock: wire codec, BMCA, port state machine (sans-IO)."""
