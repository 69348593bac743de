"""PTP profiles as data: one TOML document per profile (``netclock/ptp/profile_data/*.toml``,
shipped in the package; ``deploy/profiles/*.toml`` is the documented copy). Pure.

A profile fixes the domain, message intervals, receipt timeout, delay mechanism, transport and
TLVs of a port. :func:`load_profile` takes the TOML *text* (the CLI reads the file) and validates
every key: unknown keys, wrong types and out-of-range values raise :class:`ProfileError` naming
the key. :meth:`Profile.port_config` turns a profile into a :class:`~netclock.ptp.port.PortConfig`.

Format (all keys optional except ``name``; defaults are the IEEE 1588-2019 default profile)::

    name = "smpte-2059-2"
    [port]
    domain_number = 127
    log_announce_interval = -2
    ...
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields, replace
from typing import Any

from netclock.ptp.datasets import DelayMechanism
from netclock.ptp.port import PortConfig

#: names accepted for ``delay_mechanism``
DELAY_MECHANISMS = {"E2E": DelayMechanism.E2E, "P2P": DelayMechanism.P2P,
                    "NONE": DelayMechanism.NO_MECHANISM}
TRANSPORTS = ("udpv4", "udpv6", "l2")


class ProfileError(ValueError):
    """A profile document is not valid TOML or has a bad key or value."""


@dataclass(frozen=True, slots=True)
class Profile:
    """A validated profile. Field ranges are checked in :func:`profile_from_dict`."""

    name: str
    description: str = ""
    domain_number: int = 0
    log_announce_interval: int = 1
    log_sync_interval: int = 0
    log_min_delay_req_interval: int = 0
    log_min_pdelay_req_interval: int = 0
    announce_receipt_timeout: int = 3
    delay_mechanism: str = "E2E"
    transport: str = "udpv4"
    #: IPv6 multicast scope nibble (0xE = global, FF0E::181) for the udpv6 transport
    udp6_scope: int = 0xE
    #: L2 destination of non-peer-delay messages (Annex E; 802.1AS sends all to 01:80:C2:00:00:0E)
    l2_primary_mac: str = "01:1B:19:00:00:00"
    #: majorSdoId (transportSpecific): 1 for gPTP
    transport_specific: int = 0
    two_step: bool = True
    priority1: int = 128
    priority2: int = 128
    clock_class: int = 248
    #: 802.1AS: Follow_Up carries the Follow_Up information TLV (cumulativeRateRatio)
    follow_up_info_tlv: bool = False
    #: 802.1AS neighborPropDelayThresh (ns); a larger peer delay makes the link not asCapable
    neighbor_prop_delay_thresh: int = 0
    #: 802.1AS: the path trace TLV is attached to Announce
    path_trace: bool = False
    #: SMPTE ST 2059-2: as master, send the synchronization metadata TLV each announce interval
    smpte_sync_metadata: bool = False
    #: its defaultSystemFrameRate, numerator / denominator
    smpte_frame_rate_numerator: int = 30000
    smpte_frame_rate_denominator: int = 1001

    def port_config(self, **overrides: Any) -> PortConfig:
        """The PortConfig this profile describes, with ``overrides`` (PortConfig fields) on top."""
        from netclock.ptp.wire import ClockQuality
        from netclock.ptp.wire.smpte import SyncMetadata

        cfg = PortConfig(
            domain_number=self.domain_number,
            major_sdo_id=self.transport_specific,
            priority1=self.priority1,
            priority2=self.priority2,
            clock_quality=ClockQuality(self.clock_class),
            log_announce_interval=self.log_announce_interval,
            log_sync_interval=self.log_sync_interval,
            log_min_delay_req_interval=self.log_min_delay_req_interval,
            log_min_pdelay_req_interval=self.log_min_pdelay_req_interval,
            announce_receipt_timeout=self.announce_receipt_timeout,
            two_step=self.two_step,
            delay_mechanism=DELAY_MECHANISMS[self.delay_mechanism],
            follow_up_info_tlv=self.follow_up_info_tlv,
            neighbor_prop_delay_thresh=self.neighbor_prop_delay_thresh,
            sync_metadata=SyncMetadata(self.smpte_frame_rate_numerator,
                                       self.smpte_frame_rate_denominator)
            if self.smpte_sync_metadata else None,
        )
        return replace(cfg, **overrides)


# key → (type, min, max) for ints; (type, choices) for strings; (bool,) for flags
_INT_RANGES: dict[str, tuple[int, int]] = {
    "domain_number": (0, 255),
    "log_announce_interval": (-7, 7),
    "log_sync_interval": (-7, 7),
    "log_min_delay_req_interval": (-7, 7),
    "log_min_pdelay_req_interval": (-7, 7),
    "announce_receipt_timeout": (2, 255),
    "udp6_scope": (0, 15),
    "transport_specific": (0, 15),
    "priority1": (0, 255),
    "priority2": (0, 255),
    "clock_class": (0, 255),
    "neighbor_prop_delay_thresh": (0, 10**12),
    "smpte_frame_rate_numerator": (1, 0xFFFFFFFF),
    "smpte_frame_rate_denominator": (1, 0xFFFFFFFF),
}
_BOOLS = ("two_step", "follow_up_info_tlv", "path_trace", "smpte_sync_metadata")
_CHOICES: dict[str, tuple[str, ...]] = {
    "delay_mechanism": tuple(DELAY_MECHANISMS),
    "transport": TRANSPORTS,
}
_TOP = ("name", "description", "port")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


def profile_from_dict(doc: dict[str, Any]) -> Profile:
    """Validate a parsed TOML document into a :class:`Profile`."""
    for key in doc:
        if key not in _TOP:
            raise ProfileError(f"unknown top-level key {key!r} (allowed: {', '.join(_TOP)})")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError("'name' must be a non-empty string")
    desc = doc.get("description", "")
    if not isinstance(desc, str):
        raise ProfileError("'description' must be a string")
    port = doc.get("port", {})
    if not isinstance(port, dict):
        raise ProfileError("[port] must be a table")
    known = {f.name for f in fields(Profile)} - {"name", "description"}
    values: dict[str, Any] = {}
    for key, v in port.items():
        if key not in known:
            raise ProfileError(f"unknown key port.{key}")
        if key in _INT_RANGES:
            lo, hi = _INT_RANGES[key]
            if isinstance(v, bool) or not isinstance(v, int):
                raise ProfileError(f"port.{key} must be an integer, not {v!r}")
            if not lo <= v <= hi:
                raise ProfileError(f"port.{key}={v} outside {lo}..{hi}")
        elif key in _BOOLS:
            if not isinstance(v, bool):
                raise ProfileError(f"port.{key} must be true or false, not {v!r}")
        elif key == "l2_primary_mac":
            if not isinstance(v, str) or not _MAC.fullmatch(v):
                raise ProfileError(f"port.{key}={v!r} is not a MAC address like 01:1B:19:00:00:00")
        elif key in _CHOICES:
            if not isinstance(v, str) or v.upper() not in {c.upper() for c in _CHOICES[key]}:
                raise ProfileError(f"port.{key}={v!r} not one of {', '.join(_CHOICES[key])}")
            v = v.upper() if key == "delay_mechanism" else v.lower()
        values[key] = v
    prof = Profile(name=name, description=desc, **values)
    if prof.follow_up_info_tlv and prof.delay_mechanism != "P2P":
        raise ProfileError("port.follow_up_info_tlv (gPTP) needs delay_mechanism = \"P2P\"")
    return prof


def load_profile(text: str) -> Profile:
    """Parse and validate one profile document (TOML text)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"not valid TOML: {exc}") from exc
    return profile_from_dict(doc)


#: the profiles shipped in netclock/ptp/profile_data (file stem = profile name)
BUILTIN_PROFILES = ("default-e2e", "default-p2p", "smpte-2059-2", "aes67-media", "gptp")
