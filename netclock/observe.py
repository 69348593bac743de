"""Observation snapshots: what the daemon knows, frozen, for the status socket and metrics.

Pure module (no I/O, no clock reads). The daemon builds one :class:`Snapshot` after each
update; the Unix status socket (:mod:`netclock.platform.status_socket`) serves it as JSON, the
``netclock status`` command prints it, and :mod:`netclock.metrics` turns it into metric
families at scrape time (ntpd-rs's ``ObservableState`` arrangement).

All times are integer nanoseconds. Floats appear only for statistics (``rate_ppb``,
``r_squared``). ``to_json``/``from_json`` round-trip exactly; enums travel as lower-case names.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SNAPSHOT_VERSION",
    "DomainSnapshot",
    "LockState",
    "PacketCounters",
    "Quality",
    "Snapshot",
    "SnapshotError",
    "SourceSnapshot",
    "Timescale",
]

#: Version of the JSON form; bumped when a field changes meaning or disappears.
SNAPSHOT_VERSION = 1


class SnapshotError(ValueError):
    """A JSON snapshot cannot be decoded (wrong version, missing or mistyped field)."""


class LockState(enum.IntEnum):
    """How the local time follows its source (the codes are also the shared-memory codes)."""

    FREERUN = 0
    """No usable calibration yet: time is CLOCK_MONOTONIC mapped by the last (or no) fit."""
    LOCKING = 1
    """Measurements arrive; the fit is not yet within the lock threshold."""
    LOCKED = 2
    """The calibration follows the selected source within its thresholds."""
    HOLDOVER = 3
    """The source is gone; the last rate continues and the error bound grows."""


class Quality(enum.IntEnum):
    """Quality class in the spirit of PTP's clockClass (also the shared-memory codes)."""

    UNKNOWN = 0
    LOCKED = 1
    """Locked to a source."""
    HOLDOVER_IN_SPEC = 2
    """In holdover, error bound still within the configured specification."""
    OUT_OF_SPEC = 3
    """Free-running or holdover beyond specification."""


class Timescale(enum.IntEnum):
    """Timescale of the network time (also the shared-memory codes)."""

    ARB = 0
    """Arbitrary (PTP ARB timescale, or nothing known)."""
    TAI = 1
    """TAI since 1970-01-01 00:00:00 TAI (PTP timescale)."""
    UTC = 2
    """UTC since 1970-01-01 (NTP, Unix time)."""


def _enum_out(v: enum.IntEnum) -> str:
    return v.name.lower()


def _enum_in(cls: type[Any], value: object, where: str) -> Any:
    if not isinstance(value, str):
        raise SnapshotError(f"{where}: expected a {cls.__name__} name, got {value!r}")
    try:
        return cls[value.upper()]
    except KeyError:
        names = ", ".join(m.name.lower() for m in cls)
        raise SnapshotError(f"{where}: {value!r} is not one of {names}") from None


@dataclass(frozen=True, slots=True)
class PacketCounters:
    """Packets of one message type for one source (counters since the daemon started)."""

    message_type: str
    received: int = 0
    sent: int = 0
    malformed: int = 0


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """One time source (a PTP port/domain, an NTP server, a local reference)."""

    name: str
    """Stable label, e.g. ``ptp:eth0:0`` or ``ntp:192.0.2.1``."""
    kind: str
    """``ptp``, ``ntp`` or ``local``."""
    priority: int = 0
    selected: bool = False
    reachable: bool = False
    state: str = ""
    """Protocol state in the protocol's words (PTP port state, NTP reach)."""
    identity: str = ""
    """Grandmaster clock identity or server address/refid."""
    offset_ns: int | None = None
    """Latest measured offset (source - local network time)."""
    path_delay_ns: int | None = None
    rate_ppb: float | None = None
    r_squared: float | None = None
    stamp_source: str = "user"
    """Where receive stamps come from: ``hardware``, ``kernel`` or ``user``."""
    packets: tuple[PacketCounters, ...] = ()
    rx_poll_ms: int = 0
    """How often the source's sockets are read, in ms (``ptp.rx-poll-ms`` while a PTP port is
    not a master); 0: as each packet arrives."""


@dataclass(frozen=True, slots=True)
class DomainSnapshot:
    """The published time of one domain (what the shared-memory record holds, and more)."""

    domain: int
    lock_state: LockState = LockState.FREERUN
    quality: Quality = Quality.UNKNOWN
    timescale: Timescale = Timescale.ARB
    error_bound_ns: int = 0
    """Error bound at ``update_mono_ns``."""
    error_growth_ps_per_s: int = 0
    """Error-bound growth: picoseconds per second of age (1 ps/s = 0.001 ppb)."""
    holdover_ns: int = 0
    """Time spent in HOLDOVER so far (0 when not in holdover)."""
    steps_total: int = 0
    epoch: int = 0
    internal: int | None = None
    external: int | None = None
    rate_num: int | None = None
    rate_denom: int | None = None
    rate_ppb: float | None = None
    r_squared: float | None = None
    grandmaster: str = ""
    utc_offset_s: int = 0
    utc_offset_valid: bool = False
    leap61: bool = False
    leap59: bool = False
    update_mono_ns: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the daemon shows: program facts, per-domain time, per-source details."""

    taken_mono_ns: int
    """CLOCK_MONOTONIC when the snapshot was taken."""
    program: str = "netclock"
    version: str = ""
    pid: int = 0
    started_mono_ns: int = 0
    domains: tuple[DomainSnapshot, ...] = ()
    sources: tuple[SourceSnapshot, ...] = field(default=())

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot_version": SNAPSHOT_VERSION,
            "taken_mono_ns": self.taken_mono_ns,
            "program": self.program,
            "version": self.version,
            "pid": self.pid,
            "started_mono_ns": self.started_mono_ns,
            "domains": [_domain_out(d) for d in self.domains],
            "sources": [_source_out(s) for s in self.sources],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, d: object) -> Snapshot:
        m = _mapping(d, "snapshot")
        ver = m.get("snapshot_version")
        if ver != SNAPSHOT_VERSION:
            raise SnapshotError(
                f"snapshot_version {ver!r} is not supported (this netclock reads "
                f"{SNAPSHOT_VERSION})"
            )
        return cls(
            taken_mono_ns=_int(m, "taken_mono_ns", "snapshot"),
            program=_str(m, "program", "snapshot"),
            version=_str(m, "version", "snapshot"),
            pid=_int(m, "pid", "snapshot"),
            started_mono_ns=_int(m, "started_mono_ns", "snapshot"),
            domains=tuple(
                _domain_in(x, f"domains[{i}]") for i, x in enumerate(_list(m, "domains", ""))
            ),
            sources=tuple(
                _source_in(x, f"sources[{i}]") for i, x in enumerate(_list(m, "sources", ""))
            ),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise SnapshotError(f"snapshot is not valid JSON: {e}") from None
        return cls.from_dict(data)


# -- JSON helpers -----------------------------------------------------------------------------


def _mapping(d: object, where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise SnapshotError(f"{where}: expected an object, got {type(d).__name__}")
    return d


def _get(m: dict[str, Any], key: str, where: str) -> object:
    if key not in m:
        raise SnapshotError(f"{where}{'.' if where else ''}{key}: missing")
    return m[key]


def _int(m: dict[str, Any], key: str, where: str) -> int:
    v = _get(m, key, where)
    if isinstance(v, bool) or not isinstance(v, int):
        raise SnapshotError(f"{where}.{key}: expected an integer, got {v!r}")
    return v


def _opt_int(m: dict[str, Any], key: str, where: str) -> int | None:
    return None if m.get(key) is None else _int(m, key, where)


def _float(m: dict[str, Any], key: str, where: str) -> float | None:
    v = m.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise SnapshotError(f"{where}.{key}: expected a number, got {v!r}")
    return float(v)


def _str(m: dict[str, Any], key: str, where: str) -> str:
    v = _get(m, key, where)
    if not isinstance(v, str):
        raise SnapshotError(f"{where}.{key}: expected a string, got {v!r}")
    return v


def _bool(m: dict[str, Any], key: str, where: str) -> bool:
    v = _get(m, key, where)
    if not isinstance(v, bool):
        raise SnapshotError(f"{where}.{key}: expected true/false, got {v!r}")
    return v


def _list(m: dict[str, Any], key: str, where: str) -> list[Any]:
    v = _get(m, key, where)
    if not isinstance(v, list):
        raise SnapshotError(f"{where}{key}: expected a list, got {type(v).__name__}")
    return v


def _domain_out(d: DomainSnapshot) -> dict[str, Any]:
    return {
        "domain": d.domain,
        "lock_state": _enum_out(d.lock_state),
        "quality": _enum_out(d.quality),
        "timescale": _enum_out(d.timescale),
        "error_bound_ns": d.error_bound_ns,
        "error_growth_ps_per_s": d.error_growth_ps_per_s,
        "holdover_ns": d.holdover_ns,
        "steps_total": d.steps_total,
        "epoch": d.epoch,
        "internal": d.internal,
        "external": d.external,
        "rate_num": d.rate_num,
        "rate_denom": d.rate_denom,
        "rate_ppb": d.rate_ppb,
        "r_squared": d.r_squared,
        "grandmaster": d.grandmaster,
        "utc_offset_s": d.utc_offset_s,
        "utc_offset_valid": d.utc_offset_valid,
        "leap61": d.leap61,
        "leap59": d.leap59,
        "update_mono_ns": d.update_mono_ns,
    }


def _domain_in(x: object, where: str) -> DomainSnapshot:
    m = _mapping(x, where)
    return DomainSnapshot(
        domain=_int(m, "domain", where),
        lock_state=_enum_in(LockState, _get(m, "lock_state", where), f"{where}.lock_state"),
        quality=_enum_in(Quality, _get(m, "quality", where), f"{where}.quality"),
        timescale=_enum_in(Timescale, _get(m, "timescale", where), f"{where}.timescale"),
        error_bound_ns=_int(m, "error_bound_ns", where),
        error_growth_ps_per_s=_int(m, "error_growth_ps_per_s", where),
        holdover_ns=_int(m, "holdover_ns", where),
        steps_total=_int(m, "steps_total", where),
        epoch=_int(m, "epoch", where),
        internal=_opt_int(m, "internal", where),
        external=_opt_int(m, "external", where),
        rate_num=_opt_int(m, "rate_num", where),
        rate_denom=_opt_int(m, "rate_denom", where),
        rate_ppb=_float(m, "rate_ppb", where),
        r_squared=_float(m, "r_squared", where),
        grandmaster=_str(m, "grandmaster", where),
        utc_offset_s=_int(m, "utc_offset_s", where),
        utc_offset_valid=_bool(m, "utc_offset_valid", where),
        leap61=_bool(m, "leap61", where),
        leap59=_bool(m, "leap59", where),
        update_mono_ns=_int(m, "update_mono_ns", where),
    )


def _source_out(s: SourceSnapshot) -> dict[str, Any]:
    return {
        "name": s.name,
        "kind": s.kind,
        "priority": s.priority,
        "selected": s.selected,
        "reachable": s.reachable,
        "state": s.state,
        "identity": s.identity,
        "offset_ns": s.offset_ns,
        "path_delay_ns": s.path_delay_ns,
        "rate_ppb": s.rate_ppb,
        "r_squared": s.r_squared,
        "stamp_source": s.stamp_source,
        "rx_poll_ms": s.rx_poll_ms,
        "packets": [
            {
                "message_type": p.message_type,
                "received": p.received,
                "sent": p.sent,
                "malformed": p.malformed,
            }
            for p in s.packets
        ],
    }


def _source_in(x: object, where: str) -> SourceSnapshot:
    m = _mapping(x, where)
    packets = []
    for i, p in enumerate(_list(m, "packets", f"{where}.")):
        pw = f"{where}.packets[{i}]"
        pm = _mapping(p, pw)
        packets.append(
            PacketCounters(
                message_type=_str(pm, "message_type", pw),
                received=_int(pm, "received", pw),
                sent=_int(pm, "sent", pw),
                malformed=_int(pm, "malformed", pw),
            )
        )
    return SourceSnapshot(
        name=_str(m, "name", where),
        kind=_str(m, "kind", where),
        priority=_int(m, "priority", where),
        selected=_bool(m, "selected", where),
        reachable=_bool(m, "reachable", where),
        state=_str(m, "state", where),
        identity=_str(m, "identity", where),
        offset_ns=_opt_int(m, "offset_ns", where),
        path_delay_ns=_opt_int(m, "path_delay_ns", where),
        rate_ppb=_float(m, "rate_ppb", where),
        r_squared=_float(m, "r_squared", where),
        stamp_source=_str(m, "stamp_source", where),
        packets=tuple(packets),
        rx_poll_ms=_int(m, "rx_poll_ms", where) if "rx_poll_ms" in m else 0,
    )
