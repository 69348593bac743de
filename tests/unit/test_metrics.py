"""The metric catalogue (netclock.metrics) on an isolated registry, and its HTTP endpoint."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netclock.metrics import CATALOGUE, make_registry, start_metrics_server
from netclock.observe import (
    DomainSnapshot,
    LockState,
    PacketCounters,
    Quality,
    Snapshot,
    SourceSnapshot,
    Timescale,
)

S = 1_000_000_000

SNAP = Snapshot(
    taken_mono_ns=100 * S,
    version="9.9",
    pid=42,
    started_mono_ns=40 * S,
    domains=(
        DomainSnapshot(
            domain=0,
            lock_state=LockState.HOLDOVER,
            quality=Quality.HOLDOVER_IN_SPEC,
            timescale=Timescale.TAI,
            error_bound_ns=250,
            error_growth_ps_per_s=2_000_000,  # 2 µs per second
            holdover_ns=5 * S,
            steps_total=3,
            epoch=4,
            internal=1,
            external=2,
            rate_num=3,
            rate_denom=4,
            rate_ppb=-12.5,
            r_squared=0.998,
            grandmaster="001122.fffe.334455",
            utc_offset_s=37,
            utc_offset_valid=True,
            leap61=True,
            update_mono_ns=98 * S,
        ),
    ),
    sources=(
        SourceSnapshot(
            name="ptp:veth0:0",
            kind="ptp",
            priority=1,
            selected=True,
            reachable=False,
            state="UNCALIBRATED",
            identity="001122.fffe.334455",
            offset_ns=-1500,
            path_delay_ns=25_000,
            rate_ppb=-12.5,
            r_squared=0.97,
            stamp_source="kernel",
            packets=(
                PacketCounters("sync", received=640, malformed=2),
                PacketCounters("delay_req", sent=40),
            ),
        ),
        SourceSnapshot(name="ntp:192.0.2.1", kind="ntp", priority=2, stamp_source="user"),
    ),
)


def _text(snap: Snapshot | None, now: int = 100 * S) -> str:
    reg = make_registry(lambda: snap, process=False, now_ns=lambda: now)
    return generate_latest(reg).decode()


def test_exposition_lines() -> None:
    text = _text(SNAP)
    expected = [
        "netclock_up 1.0",
        'netclock_build_info{version="9.9"} 1.0',
        "netclock_uptime_seconds 60.0",
        'netclock_lock_state{domain="0",netclock_lock_state="holdover"} 1.0',
        'netclock_lock_state{domain="0",netclock_lock_state="locked"} 0.0',
        'netclock_quality{domain="0",netclock_quality="holdover_in_spec"} 1.0',
        'netclock_timescale{domain="0",netclock_timescale="tai"} 1.0',
        # 250 ns + 2 µs/s × 2 s
        'netclock_error_bound_seconds{domain="0"} 4.25e-06',
        'netclock_error_bound_growth_ratio{domain="0"} 2e-06',
        'netclock_holdover_seconds{domain="0"} 5.0',
        "# TYPE netclock_steps_total counter",
        'netclock_steps_total{domain="0"} 3.0',
        'netclock_calibration_epoch{domain="0"} 4.0',
        'netclock_calibration_age_seconds{domain="0"} 2.0',
        'netclock_rate_ppb{domain="0"} -12.5',
        'netclock_r_squared{domain="0"} 0.998',
        'netclock_utc_offset_seconds{domain="0"} 37.0',
        'netclock_leap_indicator{domain="0"} 1.0',
        'netclock_grandmaster_info{domain="0",identity="001122.fffe.334455"} 1.0',
        'netclock_source_offset_seconds{kind="ptp",source="ptp:veth0:0"} -1.5e-06',
        'netclock_source_path_delay_seconds{kind="ptp",source="ptp:veth0:0"} 2.5e-05',
        'netclock_source_rate_ppb{kind="ptp",source="ptp:veth0:0"} -12.5',
        'netclock_source_r_squared{kind="ptp",source="ptp:veth0:0"} 0.97',
        'netclock_source_selected{kind="ptp",source="ptp:veth0:0"} 1.0',
        'netclock_source_selected{kind="ntp",source="ntp:192.0.2.1"} 0.0',
        'netclock_source_reachable{kind="ptp",source="ptp:veth0:0"} 0.0',
        'netclock_source_priority{kind="ntp",source="ntp:192.0.2.1"} 2.0',
        'netclock_source_stamp{netclock_source_stamp="kernel",source="ptp:veth0:0"} 1.0',
        'netclock_source_stamp{netclock_source_stamp="user",source="ntp:192.0.2.1"} 1.0',
        'netclock_source_info{identity="001122.fffe.334455",kind="ptp",source="ptp:veth0:0",'
        'state="UNCALIBRATED"} 1.0',
        "# TYPE netclock_packets_received_total counter",
        'netclock_packets_received_total{message_type="sync",source="ptp:veth0:0"} 640.0',
        'netclock_packets_sent_total{message_type="delay_req",source="ptp:veth0:0"} 40.0',
        'netclock_packets_malformed_total{message_type="sync",source="ptp:veth0:0"} 2.0',
    ]
    lines = set(text.splitlines())
    missing = [e for e in expected if e not in lines]
    assert not missing, "\n".join(missing) + "\n---\n" + text


def test_sources_without_measurements_have_no_offset_series() -> None:
    text = _text(SNAP)
    assert 'netclock_source_offset_seconds{kind="ntp"' not in text


def test_before_the_first_snapshot_only_up_and_build() -> None:
    fams = {f.name for f in text_string_to_metric_families(_text(None))}
    assert fams == {"netclock_up", "netclock_build_info"}
    assert "netclock_up 0.0" in _text(None).splitlines()


def test_every_emitted_metric_is_in_the_catalogue_and_vice_versa() -> None:
    names = set()
    for fam in text_string_to_metric_families(_text(SNAP)):
        # The classic text format shows info and stateset families as gauges.
        names |= {s.name for s in fam.samples} if fam.type == "counter" else {fam.name}
    assert names == {m.name for m in CATALOGUE}


def test_naming_conventions() -> None:
    for m in CATALOGUE:
        assert m.name.startswith("netclock_"), m.name
        assert m.type in ("gauge", "counter", "info", "stateset")
        assert (m.type == "counter") == m.name.endswith("_total"), m.name
        assert (m.type == "info") == m.name.endswith("_info"), m.name
        assert not any(u in m.name for u in ("_ns", "_nanoseconds", "_ms", "_us")), m.name
    assert len({m.name for m in CATALOGUE}) == len(CATALOGUE)


def test_no_state_between_scrapes() -> None:
    current: list[Snapshot | None] = [SNAP]
    reg = make_registry(lambda: current[0], process=False, now_ns=lambda: 100 * S)
    assert "ntp:192.0.2.1" in generate_latest(reg).decode()
    current[0] = Snapshot(taken_mono_ns=1, sources=SNAP.sources[:1])
    text = generate_latest(reg).decode()
    assert "ntp:192.0.2.1" not in text
    assert "netclock_lock_state" not in text.replace("# HELP netclock_lock_state", "").replace(
        "# TYPE netclock_lock_state", ""
    )


def test_error_bound_ages_at_scrape_time() -> None:
    later = _text(SNAP, now=108 * S)  # 10 s after the update: 250 ns + 20 µs
    assert 'netclock_error_bound_seconds{domain="0"} 2.025e-05' in later.splitlines()


def test_http_endpoint_on_loopback() -> None:
    srv = start_metrics_server(lambda: SNAP, port=0)
    try:
        assert srv.address == "127.0.0.1" and srv.port > 0
        with urllib.request.urlopen(srv.url, timeout=5) as r:
            body = r.read().decode()
        assert "netclock_up 1.0" in body.splitlines()
        assert "process_resident_memory_bytes" in body
    finally:
        srv.close()


def test_http_port_in_use_is_reported() -> None:
    srv = start_metrics_server(lambda: None, port=0, process=False)
    try:
        with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{srv.port}"):
            start_metrics_server(lambda: None, port=srv.port, process=False)
    finally:
        srv.close()
