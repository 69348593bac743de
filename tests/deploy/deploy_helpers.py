"""Helpers for the deployment-file tests (tests/deploy): paths, a fully populated snapshot,
and the extraction of metric names from PromQL."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from netclock.observe import Snapshot

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def full_snapshot() -> Snapshot:
    from netclock.observe import (
        DomainSnapshot,
        LockState,
        PacketCounters,
        Quality,
        Snapshot,
        SourceSnapshot,
        Timescale,
    )

    return Snapshot(
        taken_mono_ns=10_000_000_000,
        started_mono_ns=1_000_000_000,
        domains=(
            DomainSnapshot(
                domain=0,
                lock_state=LockState.LOCKED,
                quality=Quality.LOCKED,
                timescale=Timescale.TAI,
                error_bound_ns=800,
                error_growth_ps_per_s=1000,
                holdover_ns=0,
                steps_total=1,
                epoch=2,
                rate_ppb=10_000.5,
                r_squared=0.999,
                grandmaster="001122.fffe.334455",
                utc_offset_s=37,
                utc_offset_valid=True,
                update_mono_ns=9_900_000_000,
            ),
        ),
        sources=(
            SourceSnapshot(
                name="ptp:eth0:0",
                kind="ptp",
                priority=1,
                selected=True,
                reachable=True,
                state="slave",
                identity="001122.fffe.334455-1",
                offset_ns=-120,
                path_delay_ns=25_000,
                rate_ppb=10_000.4,
                r_squared=0.998,
                stamp_source="kernel",
                packets=(PacketCounters("sync", received=80, sent=0, malformed=1),),
            ),
        ),
    )


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


# -- PromQL metric-name extraction ----------------------------------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords, labels and variables removed)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, strings
    s = re.sub(r"\{[^}]*\}", " ", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)  # range and subquery selectors
    s = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s
    )  # label lists
    s = re.sub(r"\$\{?\w+\}?", " ", s)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()", s):
        tok = m.group(1)
        if tok.lower() not in _KEYWORDS:
            names.add(tok)
    return names
