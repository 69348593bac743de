"""Configuration: every knob declared once, TOML loading with errors that name the key.

Pure module: declarations, validation and rendering; the only I/O is :func:`load_file`
reading the file it is given. Each knob is one dataclass field declared with :func:`knob`
(default, range or choices, unit, doc), in the spirit of linuxptp's ``config_tab[]`` and
ntpd-rs's ``deny_unknown_fields``. Everything else is derived from those declarations:

* :func:`load_text` / :func:`load_file`: TOML → :class:`Config`. Keys are kebab-case
  (``window-size``). An unknown key is an error naming its full dotted path and suggesting the
  closest known key; a wrong type or an out-of-range value is an error naming the key, the value
  and the accepted range. All problems of a file are reported together (:class:`ConfigError`).
* :func:`render_markdown` → ``docs/config.md``; :func:`render_default_toml` →
  ``deploy/netclock.toml.default`` (every knob commented out with its default).
  ``python -m netclock.config markdown|default-toml`` prints them.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import tomllib
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ClockSection",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "HoldoverSection",
    "LogSection",
    "MetricsSection",
    "NtpSection",
    "NtpServer",
    "PtpExtraDomain",
    "PtpSection",
    "PublishSection",
    "ReferenceSection",
    "all_keys",
    "load_file",
    "load_text",
    "parse",
    "render_default_toml",
    "render_markdown",
]


# ---------------------------------------------------------------------------------------------
# Declaration helper
# ---------------------------------------------------------------------------------------------


def knob(
    default: Any,
    doc: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: Sequence[str] | None = None,
    unit: str = "",
    example: str | int | None = None,
    required: bool = False,
) -> Any:
    """Declare one knob: a dataclass field carrying its doc, range/choices and unit.

    ``example`` is what the default file shows for an empty default (e.g. a server address);
    ``required`` knobs must be given (only inside array tables such as ``[[ntp.server]]``).
    """
    meta = {
        "doc": doc,
        "min": min,
        "max": max,
        "choices": tuple(choices) if choices is not None else None,
        "unit": unit,
        "example": example,
        "required": required,
    }
    if isinstance(default, list | dict | set):
        raise TypeError("knob defaults must be immutable (use a tuple)")
    return field(default=default, metadata=meta)


def table_list(item: type[Any], doc: str, *, key: str) -> Any:
    """Declare an array of tables (``[[section.key]]``), each item a dataclass of knobs."""
    return field(default=(), metadata={"doc": doc, "item": item, "key": key})


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockSection:
    """The calibration fit of local CLOCK_MONOTONIC to network time, and lock detection."""

    window_size: int = knob(
        128,
        "Observations always kept in the sliding regression window (its length in count).",
        min=2,
        max=65536,
    )
    window_span_ns: int = knob(
        64_000_000_000,
        "Older observations are also kept while within this much local time of the newest, "
        "so fast exchange rates still fit over a useful time (up to window-max). 0: count "
        "only.",
        min=0,
        max=10**15,
        unit="ns",
    )
    window_max: int = knob(
        1024, "Most observations kept when window-span-ns extends the window.", min=2, max=65536
    )
    window_threshold: int = knob(
        4,
        "Observations needed before the first fit is published (at most window-size).",
        min=2,
        max=65536,
    )
    outlier_k: float = knob(
        4.0,
        "Reject observations whose residual exceeds this many robust sigmas, then refit. "
        "0 disables rejection; otherwise at least 1.",
        min=0.0,
        max=100.0,
    )
    error_floor_ns: int = knob(
        50,
        "Error assumed for the best observation in the window; sets how strongly "
        "low-delay observations are favoured.",
        min=1,
        max=10**9,
        unit="ns",
    )
    floor_k: float = knob(
        0.25,
        "Adaptive weighting: the error floor is at least this times the typical error excess "
        "(median error minus the least recent error), so weights favour low-delay "
        "observations only as sharply as the measured jitter justifies. 0: fixed "
        "error-floor-ns.",
        min=0.0,
        max=100.0,
    )
    floor_scale: float = knob(
        0.3,
        "Raise the floor when offsets scatter regardless of their error (symmetric noise): "
        "floor >= floor-scale * sqrt(s0^2/k) from the model resid^2 = s0^2 + k*excess^2. "
        "0 disables the model.",
        min=0.0,
        max=100.0,
    )
    spike_reject_k: float = knob(
        8.0,
        "Delay-spike filter: an observation whose error excess is above this many typical "
        "excesses (and above spike-min-ns) is withheld from the fit. 0 disables.",
        min=0.0,
        max=1000.0,
    )
    spike_min_ns: int = knob(
        1_000,
        "Least error excess that can count as a delay spike.",
        min=0,
        max=10**12,
        unit="ns",
    )
    spike_hold_ns: int = knob(
        60_000_000_000,
        "Observations withheld as spikes for this long mean the path changed: they are "
        "accepted again.",
        min=0,
        max=10**15,
        unit="ns",
    )
    step_threshold_ns: int = knob(
        1_000_000,
        "A disagreement with the fit beyond this (and beyond the observation's own error) "
        "makes an observation a step candidate. 0 disables step detection.",
        min=0,
        max=10**12,
        unit="ns",
    )
    step_confirm: int = knob(
        3, "Consecutive agreeing step candidates that confirm a step.", min=1, max=64
    )
    lost_after: int = knob(
        0,
        "More than this many consecutive observations disagreeing with the fit (beyond "
        "step-threshold-ns) but not agreeing on a step mean the fit is lost: the window "
        "restarts from them. 0: max(2 * step-confirm, window-threshold).",
        min=0,
        max=65536,
    )
    lock_threshold_ns: int = knob(
        10_000,
        "LOCKING becomes LOCKED once the offset error stays below this.",
        min=1,
        max=10**12,
        unit="ns",
    )
    lock_samples: int = knob(
        4, "Consecutive fits within lock-threshold-ns needed to declare LOCKED.", min=1, max=1000
    )
    max_rate_ppm: float = knob(
        500.0,
        "Sanity limit: a fitted rate further than this from 1 is rejected.",
        min=1.0,
        max=200_000.0,
        unit="ppm",
    )


@dataclass(frozen=True, slots=True)
class PtpExtraDomain:
    """Each table is one more PTP domain followed (and, with role auto, served) by the port."""

    domain: int = knob(0, "PTP domainNumber.", min=0, max=255, example=1, required=True)
    source_priority: int = knob(
        2, "Source priority of this domain for failover (lower is preferred).", min=0, max=255
    )


@dataclass(frozen=True, slots=True)
class PtpSection:
    """IEEE 1588 PTP: the domain followed (and served), port intervals, dataset values."""

    enabled: bool = knob(False, "Run PTP.")
    domain: int = knob(0, "PTP domainNumber.", min=0, max=255)
    interface: str = knob(
        "", "Network interface to run on; empty picks the interface of the default route."
    )
    transport: str = knob("udpv4", "Network transport.", choices=("udpv4", "udpv6", "l2"))
    event_port: int = knob(
        319,
        "UDP port for event messages (Sync, Delay_Req). Ports below 1024 need "
        "CAP_NET_BIND_SERVICE.",
        min=1,
        max=65535,
    )
    general_port: int = knob(
        320, "UDP port for general messages (Announce, Follow_Up).", min=1, max=65535
    )
    delay_mechanism: str = knob("e2e", "Path delay mechanism.", choices=("e2e", "p2p"))
    role: str = knob(
        "slave-only",
        "slave-only never becomes master; auto runs the BMCA and may become grandmaster; "
        "master-only always serves.",
        choices=("slave-only", "auto", "master-only"),
    )
    timestamping: str = knob(
        "auto",
        "Where packet timestamps come from: kernel (SO_TIMESTAMPING software), user (after "
        "the syscall), or auto (kernel when available).",
        choices=("auto", "kernel", "user"),
    )
    rx_poll_ms: int = knob(
        250,
        "Read the PTP sockets every this many ms instead of waking per packet, while an E2E "
        "port is not a master and the kernel stamps packets on arrival (so reading them later "
        "changes no timestamp; the calibration only hears of them up to this much later). At "
        "16 Sync/s it turns about 40 wake-ups a second into 4 and cuts the daemon's CPU. From "
        "250 up the daemon's tick reads them, once this much less 125 ms has passed: the tick "
        "rides on the Delay_Req wake-ups and runs on its own at most 500 ms after the last "
        "one, so a read can come up to 500 ms after the datagram. Below 250 a timer of their "
        "own reads them. 0: wake per packet.",
        min=0,
        max=500,
        unit="ms",
    )
    log_announce_interval: int = knob(1, "log2 seconds between Announce messages.", min=-7, max=7)
    log_sync_interval: int = knob(0, "log2 seconds between Sync messages.", min=-7, max=7)
    log_min_delay_req_interval: int = knob(
        0, "log2 seconds between Delay_Req messages.", min=-7, max=7
    )
    announce_receipt_timeout: int = knob(
        3, "Announce intervals without Announce before the master is lost.", min=2, max=255
    )
    priority1: int = knob(128, "defaultDS.priority1 (lower wins the BMCA).", min=0, max=255)
    priority2: int = knob(128, "defaultDS.priority2.", min=0, max=255)
    clock_class: int = knob(248, "defaultDS.clockQuality.clockClass.", min=0, max=255)
    clock_accuracy: int = knob(
        254, "defaultDS.clockQuality.clockAccuracy (254 = unknown).", min=0, max=255
    )
    offset_scaled_log_variance: int = knob(
        0xFFFF, "defaultDS.clockQuality.offsetScaledLogVariance.", min=0, max=0xFFFF
    )
    delay_asymmetry_ns: int = knob(
        0, "Known path asymmetry to correct for.", min=-(10**9), max=10**9, unit="ns"
    )
    ttl: int = knob(1, "IP TTL / hop limit of multicast messages.", min=1, max=255)
    source_priority: int = knob(
        1, "Source priority for failover (lower is preferred).", min=0, max=255
    )
    profile: str = knob(
        "",
        "PTP profile: a built-in name (default-e2e, default-p2p, smpte-2059-2, aes67-media, "
        "gptp) or a TOML file. It sets the domain, intervals, delay mechanism, transport and "
        "TLVs; a [ptp] key set to anything but its default overrides the profile's value. "
        "Empty: the keys below as they are (the default E2E profile).",
        example="smpte-2059-2",
    )
    log_min_pdelay_req_interval: int = knob(
        0, "log2 seconds between Pdelay_Req messages (delay-mechanism p2p).", min=-7, max=7
    )
    udp6_scope: int = knob(
        14,
        "IPv6 multicast scope of the udpv6 transport: messages go to FF0X::181 with X this "
        "nibble (14 = 0xE, global; 2 = link-local).",
        min=0,
        max=15,
    )
    extra_domains: tuple[PtpExtraDomain, ...] = table_list(
        PtpExtraDomain,
        "More domains to follow on the same interface, one [[ptp.extra-domain]] table each. "
        "Each is a source of its own (ptp:IFACE:DOMAIN) in the failover by source priority: "
        "the configured priorities choose the domain that drives the main time.",
        key="extra-domain",
    )
    hybrid_e2e: bool = knob(
        False,
        "Hybrid (mixed multicast/unicast) E2E, like ptp4l's hybrid_e2e: Announce and Sync stay "
        "multicast while this slave sends its Delay_Reqs unicast to the master's address, which "
        "answers them unicast (IEEE 1588 16.1). Other slaves then never receive them, and a "
        "switch forwards them to one port instead of flooding.",
    )
    acceptable_masters: str = knob(
        "",
        "Acceptable master table (IEEE 1588 17.6, like ptp4l's acceptable_master_list): "
        "clockIdentities, each optionally -portNumber, separated by spaces or commas; "
        "Announces from any other sender are ignored (counted as announce_rejected). "
        "Empty accepts every master.",
        example="001122.fffe.334455 001122.fffe.667788-1",
    )


@dataclass(frozen=True, slots=True)
class NtpServer:
    """Each table is one server to follow; failover goes by priority."""

    address: str = knob("", "Host name or address.", example="ntp.example.net", required=True)
    port: int = knob(123, "UDP port.", min=1, max=65535)
    minpoll: int = knob(4, "Shortest poll interval, log2 seconds.", min=-7, max=17)
    maxpoll: int = knob(10, "Longest poll interval, log2 seconds.", min=-7, max=17)
    iburst: bool = knob(True, "Send a burst of requests at start for a fast first fit.")
    xleave: bool = knob(False, "Use interleaved mode (accurate server transmit stamps).")
    warm_up_port: int = knob(
        9,
        "Before each request, two empty UDP datagrams from the same socket to this port of "
        "the server (9: discard, which nothing answers), each asking for a kernel TX stamp as "
        "the request does: the request then crosses a path, TX-stamp work included, that its "
        "forerunners have just woken, as the reply does, instead of a colder one (on veth with "
        "kernel stamps a +1 us offset bias became +0.01-0.10 us). 0: none.",
        min=0,
        max=65535,
    )
    priority: int = knob(2, "Source priority for failover (lower is preferred).", min=0, max=255)
    key: int = knob(
        0,
        "Id of the [ntp] keys-file key that signs requests; only answers whose MAC verifies "
        "under it are used. 0: unauthenticated.",
        min=0,
        max=0xFFFFFFFF,
    )


@dataclass(frozen=True, slots=True)
class NtpSection:
    """NTPv4: servers to follow, and answering NTP requests."""

    servers: tuple[NtpServer, ...] = table_list(
        NtpServer, "NTP servers, one [[ntp.server]] table each.", key="server"
    )
    serve: bool = knob(False, "Answer NTP requests with the published time.")
    listen_address: str = knob("0.0.0.0", "Address to answer NTP requests on.")
    listen_port: int = knob(
        123, "UDP port to answer on (below 1024 needs CAP_NET_BIND_SERVICE).", min=1, max=65535
    )
    rate_limit_interval_log2: int = knob(
        -4,
        "Per-client-address rate limit of the NTP server: one request per 2^N s on average; "
        "faster clients get KoD RATE.",
        min=-10,
        max=6,
    )
    rate_limit_burst: int = knob(
        16, "Requests a client may send in a burst above the rate limit.", min=1, max=4096
    )
    allow: str = knob(
        "",
        "NTP server access control, like chrony's allow: subnets (CIDR; a bare address is one "
        "host) separated by spaces or commas. The most specific allow/deny subnet containing "
        "the client decides (deny wins a tie). Once any subnet is allowed, clients outside "
        "every rule are denied; empty allows all not denied.",
        example="192.0.2.0/24 2001:db8::/32",
    )
    deny: str = knob(
        "",
        "Subnets whose requests the NTP server drops (or answers with KoD DENY, see deny-kod); "
        "a more specific allow subnet inside one re-allows its clients.",
        example="192.0.2.128/25",
    )
    keys_file: str = knob(
        "",
        "Symmetric keys (chrony's keyfile format: ID TYPE HEX:...), for [[ntp.server]] key and "
        "for answering signed requests. Refused unless owned by the daemon's user or root and "
        "mode 0600 (or 0640 owned by root with the daemon's group). Empty: no authentication.",
        example="/etc/netclock/ntp.keys",
    )
    require_auth: bool = knob(
        False, "With keys-file: the NTP server drops requests without a valid MAC."
    )
    deny_kod: bool = knob(
        False,
        "Answer denied clients with a KoD DENY (at most one per second per client, like ntpd's "
        "restrict kod) instead of dropping their requests silently.",
    )


@dataclass(frozen=True, slots=True)
class ReferenceSection:
    """A local time reference: what a grandmaster serves when it follows no network source."""

    enabled: bool = knob(False, "Use the local reference as a time source.")
    clock: str = knob(
        "realtime",
        "Local clock the reference reads: realtime (CLOCK_REALTIME, the system's UTC) or tai "
        "(CLOCK_TAI).",
        choices=("realtime", "tai"),
    )
    shift_ns: int = knob(
        0,
        "Constant added to the reference clock (e.g. to serve a deliberately shifted domain).",
        min=-(10**18),
        max=10**18,
        unit="ns",
    )
    timescale: str = knob(
        "utc", "Timescale the reference is announced as.", choices=("utc", "tai", "arb")
    )
    interval_s: float = knob(
        1.0, "How often the reference is read.", min=0.01, max=3600.0, unit="s"
    )
    priority: int = knob(200, "Source priority for failover (lower is preferred).", min=0, max=255)


@dataclass(frozen=True, slots=True)
class HoldoverSection:
    """What happens when the selected source goes quiet."""

    source_timeout_s: float = knob(
        10.0,
        "Time without a measurement before LOCKED becomes HOLDOVER.",
        min=0.1,
        max=86400.0,
        unit="s",
    )
    failover_after_s: float = knob(
        30.0,
        "Time in HOLDOVER before switching to the next source by priority.",
        min=0.0,
        max=86400.0,
        unit="s",
    )
    spec_ns: int = knob(
        1_000_000,
        "Error bound up to which holdover counts as in specification.",
        min=1,
        max=10**12,
        unit="ns",
    )
    wander_ppb: float = knob(
        1.0,
        "Frequency wander assumed when none is measured; the error bound grows at least "
        "this fast in holdover.",
        min=0.0,
        max=10**6,
        unit="ppb",
    )
    state_file: str = knob(
        "",
        "File where the last rate and state persist (like chrony's driftfile); empty "
        "disables persistence.",
    )
    state_interval_s: float = knob(
        60.0, "How often the state file is rewritten.", min=1.0, max=86400.0, unit="s"
    )


@dataclass(frozen=True, slots=True)
class PublishSection:
    """Handing the time to local processes: shared memory and the status socket."""

    shm: bool = knob(True, "Publish the calibration in shared memory (netclock.client).")
    shm_path: str = knob(
        "",
        "Shared-memory file; empty means $XDG_RUNTIME_DIR/netclock/clock.shm, or "
        "/run/netclock/clock.shm without XDG_RUNTIME_DIR.",
    )
    shm_group: str = knob(
        "", "Group that may read the shared-memory file (mode 0640); empty leaves it alone."
    )
    shm_slots: int = knob(8, "Domain records the shared-memory file holds.", min=1, max=256)
    socket: bool = knob(True, "Serve the JSON status API on a Unix socket.")
    socket_path: str = knob(
        "", "Status socket; empty means status.sock next to the shared-memory file."
    )
    socket_group: str = knob("", "Group that may connect to the status socket (mode 0660).")
    chrony_sock: str = knob(
        "", "Path of a chronyd SOCK refclock socket to feed; empty disables the hand-off."
    )


@dataclass(frozen=True, slots=True)
class MetricsSection:
    """The Prometheus endpoint."""

    enabled: bool = knob(True, "Serve Prometheus metrics over HTTP.")
    listen_address: str = knob("127.0.0.1", "Address the metrics endpoint binds to.")
    port: int = knob(9468, "TCP port of the metrics endpoint.", min=1, max=65535)


@dataclass(frozen=True, slots=True)
class LogSection:
    """Logging."""

    level: str = knob("info", "Log level.", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration; ``Config()`` is the default one."""

    clock: ClockSection = field(default_factory=ClockSection)
    ptp: PtpSection = field(default_factory=PtpSection)
    ntp: NtpSection = field(default_factory=NtpSection)
    reference: ReferenceSection = field(default_factory=ReferenceSection)
    holdover: HoldoverSection = field(default_factory=HoldoverSection)
    publish: PublishSection = field(default_factory=PublishSection)
    metrics: MetricsSection = field(default_factory=MetricsSection)
    log: LogSection = field(default_factory=LogSection)


SECTIONS: dict[str, type[Any]] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Introspection
# ---------------------------------------------------------------------------------------------


def _kebab(attr: str) -> str:
    return attr.replace("_", "-")


@dataclass(frozen=True, slots=True)
class _Knob:
    key: str
    attr: str
    kind: str  # "int" | "float" | "bool" | "str" | "table"
    default: Any
    meta: typing.Mapping[str, Any]


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _knobs(cls: type[Any]) -> list[_Knob]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        t = hints[f.name]
        kind = (
            "table"
            if "item" in f.metadata
            else {int: "int", float: "float", bool: "bool", str: "str"}[t]
        )
        key = f.metadata.get("key") or _kebab(f.name)
        out.append(_Knob(key, f.name, kind, f.default, f.metadata))
    return out


def all_keys() -> list[str]:
    """Every dotted key (``clock.window-size``, ``ntp.server[].address``, ...)."""
    keys = []
    for sname, scls in SECTIONS.items():
        for k in _knobs(scls):
            if k.kind == "table":
                keys += [f"{sname}.{k.key}[].{s.key}" for s in _knobs(k.meta["item"])]
            else:
                keys.append(f"{sname}.{k.key}")
    return keys


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    key: str
    """Full dotted path of the offending key (``ntp.server[1].minpoll``)."""
    message: str

    def __str__(self) -> str:
        return self.message


class ConfigError(ValueError):
    """One or more configuration problems; ``issues`` lists them, ``key`` is the first."""

    def __init__(self, issues: Sequence[ConfigIssue], source: str = "") -> None:
        self.issues = list(issues)
        self.source = source
        self.key = self.issues[0].key if self.issues else ""
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + i.message for i in self.issues))


def _range_text(meta: typing.Mapping[str, Any]) -> str:
    lo, hi = meta["min"], meta["max"]
    if lo is None and hi is None:
        return ""
    return f"{_fmt(lo) if lo is not None else ''}..{_fmt(hi) if hi is not None else ''}"


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1e6:
        return f"{v:.0f}.0"
    return repr(v)


_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _suggest(path: str, candidates: list[str]) -> str:
    best = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{best[0]}'?)" if best else ""


def _value(k: _Knob, value: Any, path: str, issues: list[ConfigIssue]) -> Any:
    """Check one scalar value; returns it (ints widened to float for float knobs)."""
    m = k.meta
    ok_type = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }[k.kind]
    if not ok_type:
        issues.append(
            ConfigIssue(
                path,
                f"{path} must be {_TYPE_NAMES[k.kind]}, got {type(value).__name__} "
                f"{_fmt(value) if isinstance(value, str | int | float) else ''}".rstrip(),
            )
        )
        return k.default
    if k.kind == "float":
        value = float(value)
    if m["choices"] is not None and value not in m["choices"]:
        issues.append(
            ConfigIssue(
                path,
                f"{path} = {_fmt(value)} is not one of: {', '.join(m['choices'])}",
            )
        )
        return k.default
    lo, hi = m["min"], m["max"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        unit = f" {m['unit']}" if m["unit"] else ""
        issues.append(
            ConfigIssue(path, f"{path} = {_fmt(value)} is out of range {_range_text(m)}{unit}")
        )
        return k.default
    return value


def _build(
    cls: type[Any], table: Any, path: str, issues: list[ConfigIssue], candidates: list[str]
) -> Any:
    if not isinstance(table, dict):
        issues.append(ConfigIssue(path, f"{path} must be a table, got {type(table).__name__}"))
        return cls()
    knobs = {k.key: k for k in _knobs(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{path}.{key}"
        k = knobs.get(key)
        if k is None:
            generic = _generic(full)
            hint = _suggest(generic, candidates)
            if hint:
                # Print the suggestion with the file's own indices.
                hint = hint.replace("[]", full[full.find("[") : full.find("]") + 1] or "[]")
            issues.append(ConfigIssue(full, f"unknown key '{full}'{hint}"))
            continue
        if k.kind == "table":
            if not isinstance(value, list):
                issues.append(ConfigIssue(full, f"{full} must be an array of tables ([[{full}]])"))
                continue
            values[k.attr] = tuple(
                _build(k.meta["item"], item, f"{full}[{i}]", issues, candidates)
                for i, item in enumerate(value)
            )
        else:
            values[k.attr] = _value(k, value, full, issues)
    for k in knobs.values():
        if k.meta.get("required") and k.key not in table:
            issues.append(ConfigIssue(f"{path}.{k.key}", f"{path}.{k.key} is required"))
    return cls(**values)


def _generic(path: str) -> str:
    """``ntp.server[3].x`` → ``ntp.server[].x`` (how all_keys() spells array items)."""
    out, depth = [], 0
    for ch in path:
        if ch == "[":
            depth += 1
            out.append("[")
        elif ch == "]":
            depth -= 1
            out.append("]")
        elif not depth:
            out.append(ch)
    return "".join(out)


def _cross_checks(cfg: Config, issues: list[ConfigIssue]) -> None:
    c = cfg.clock
    if c.window_threshold > c.window_size:
        issues.append(
            ConfigIssue(
                "clock.window-threshold",
                f"clock.window-threshold = {c.window_threshold} is out of range 2..window-size "
                f"(clock.window-size = {c.window_size})",
            )
        )
    if 0.0 < c.outlier_k < 1.0:
        issues.append(
            ConfigIssue(
                "clock.outlier-k",
                f"clock.outlier-k = {c.outlier_k!r} is out of range: 0 (off) or 1.0..100.0",
            )
        )
    for i, s in enumerate(cfg.ntp.servers):
        if s.minpoll > s.maxpoll:
            issues.append(
                ConfigIssue(
                    f"ntp.server[{i}].minpoll",
                    f"ntp.server[{i}].minpoll = {s.minpoll} is out of range: it must not exceed "
                    f"ntp.server[{i}].maxpoll = {s.maxpoll}",
                )
            )
    n = cfg.ntp
    for i, srv in enumerate(n.servers):
        if srv.key and not n.keys_file:
            issues.append(
                ConfigIssue(
                    f"ntp.server[{i}].key",
                    f"ntp.server[{i}].key = {srv.key} needs ntp.keys-file",
                )
            )
    if n.allow or n.deny:
        from netclock.ntp.server import AccessControl

        for key, text in (("allow", n.allow), ("deny", n.deny)):
            try:
                AccessControl.parse(text)
            except ValueError as e:
                issues.append(ConfigIssue(f"ntp.{key}", f"ntp.{key}: {e}"))
    p = cfg.ptp
    seen = {p.domain}
    for i, d in enumerate(p.extra_domains):
        if d.domain in seen:
            issues.append(
                ConfigIssue(
                    f"ptp.extra-domain[{i}].domain",
                    f"ptp.extra-domain[{i}].domain = {d.domain} is already followed",
                )
            )
        seen.add(d.domain)
    if p.acceptable_masters:
        from netclock.ptp.bmca import parse_acceptable_masters

        try:
            parse_acceptable_masters(p.acceptable_masters)
        except ValueError as e:
            issues.append(ConfigIssue("ptp.acceptable-masters", f"ptp.acceptable-masters: {e}"))
    if p.event_port == p.general_port:
        issues.append(
            ConfigIssue(
                "ptp.general-port",
                f"ptp.general-port = {p.general_port} must differ from ptp.event-port",
            )
        )


def parse(data: typing.Mapping[str, Any], source: str = "") -> Config:
    """Build a :class:`Config` from decoded TOML; raises :class:`ConfigError`."""
    issues: list[ConfigIssue] = []
    candidates = all_keys() + list(SECTIONS)
    candidates += [
        f"{n}.{k.key}" for n, c in SECTIONS.items() for k in _knobs(c) if k.kind == "table"
    ]
    sections: dict[str, Any] = {}
    for name, table in data.items():
        cls = SECTIONS.get(name)
        if cls is None:
            what = "section" if isinstance(table, dict) else "key"
            issues.append(
                ConfigIssue(name, f"unknown {what} '{name}'{_suggest(name, list(SECTIONS))}")
            )
            continue
        sections[name] = _build(cls, table, name, issues, candidates)
    cfg = Config(**sections)
    if not issues:
        _cross_checks(cfg, issues)
    if issues:
        raise ConfigError(issues, source)
    return cfg


def load_text(text: str, source: str = "") -> Config:
    """Parse TOML text; raises :class:`ConfigError` (syntax errors included)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([ConfigIssue("", f"invalid TOML: {e}")], source) from None
    except RecursionError:
        raise ConfigError([ConfigIssue("", "invalid TOML: nested too deeply")], source) from None
    return parse(data, source)


def load_file(path: str) -> Config:
    """Read and parse a TOML file; unreadable files raise :class:`ConfigError` too."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([ConfigIssue("", f"cannot read: {e}")], path) from None
    return load_text(text, path)


# ---------------------------------------------------------------------------------------------
# Rendering (docs/config.md and deploy/netclock.toml.default)
# ---------------------------------------------------------------------------------------------

_KIND_NAMES = {"int": "integer", "float": "float", "bool": "boolean", "str": "string"}


def _facts(k: _Knob) -> str:
    m = k.meta
    parts = [_KIND_NAMES[k.kind]]
    if m.get("required"):
        parts.append("required")
    else:
        parts.append(f"default {_fmt(k.default)}")
    if m["choices"] is not None:
        parts.append("one of " + ", ".join(m["choices"]))
    rt = _range_text(m)
    if rt:
        parts.append(f"range {rt}")
    if m["unit"]:
        parts.append(f"unit {m['unit']}")
    return "; ".join(parts)


def _doc(cls: type[Any]) -> str:
    return " ".join((cls.__doc__ or "").split())


def render_markdown() -> str:
    out = [
        "# netclock configuration reference",
        "",
        "<!-- Generated from netclock/config.py by `python -m netclock.config markdown`."
        " Do not edit. -->",
        "",
        "netclock reads one TOML file (`netclock run --config FILE`). Keys are kebab-case."
        " An unknown key, a value of the wrong type or a value out of range is an error"
        " naming the key; `netclock config check FILE` checks a file without starting"
        " anything. `deploy/netclock.toml.default` lists every knob with its default.",
        "",
    ]
    for sname, scls in SECTIONS.items():
        out += [f"## [{sname}]", "", _doc(scls), ""]
        for k in _knobs(scls):
            if k.kind == "table":
                item = k.meta["item"]
                out += [f"### [[{sname}.{k.key}]]", "", k.meta["doc"] + " " + _doc(item), ""]
                for s in _knobs(item):
                    out += [f"- `{s.key}` ({_facts(s)}): {s.meta['doc']}"]
                out.append("")
            else:
                out += [f"- `{k.key}` ({_facts(k)}): {k.meta['doc']}"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _wrap(text: str, prefix: str, width: int = 96) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(prefix) + len(cur) + 1 + len(word) > width:
            lines.append(prefix + cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        lines.append(prefix + cur)
    return lines


def render_default_toml() -> str:
    out = [
        "# netclock configuration: every knob, commented out, with its default.",
        "# Generated from netclock/config.py (`python -m netclock.config default-toml`).",
        "# Check a file with `netclock config check FILE`. Reference: docs/config.md.",
    ]
    for sname, scls in SECTIONS.items():
        out += ["", f"[{sname}]"]
        out += _wrap(_doc(scls), "# ")
        tables = []
        for k in _knobs(scls):
            if k.kind == "table":
                tables.append(k)
                continue
            out.append("")
            out += _wrap(k.meta["doc"], "# ")
            out += _wrap(_facts(k), "#   ")
            out.append(f"# {k.key} = {_fmt(k.default)}")
        for t in tables:
            out.append("")
            out += _wrap(t.meta["doc"] + " Example:", "# ")
            out.append(f"# [[{sname}.{t.key}]]")
            for s in _knobs(t.meta["item"]):
                shown = s.meta["example"] if s.meta["example"] is not None else s.default
                note = f"  # {_facts(s)}"
                out.append(f"# {s.key} = {_fmt(shown)}{note}")
    return "\n".join(out) + "\n"


def _main(argv: Sequence[str]) -> int:
    renders: dict[str, Callable[[], str]] = {
        "markdown": render_markdown,
        "default-toml": render_default_toml,
    }
    if len(argv) != 1 or argv[0] not in renders:
        sys.stderr.write("usage: python -m netclock.config markdown|default-toml\n")
        return 2
    sys.stdout.write(renders[argv[0]]())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
