"""deploy/grafana: the dashboard parses, covers what issue 8 lists, and every PromQL
expression is valid (promtool) and uses only metrics that RUNNING netclock daemons (a
grandmaster and a locked agent, conftest.daemon_pair) serve on a live /metrics scrape."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_helpers import (
    DEPLOY,
    concrete,
    dashboard,
    dashboard_exprs,
    is_capture,
    promql_metric_names,
    sample_names,
)

yaml = pytest.importorskip("yaml", reason="PyYAML (pip pyyaml) missing")

GRAFANA = DEPLOY / "grafana"


def test_dashboard_uses_only_exported_metrics(exposed_names: set[str]) -> None:
    """exposed_names: scraped from the running daemon pair, not from the metrics module."""
    allowed = exposed_names | {"up"}  # up: Prometheus' own per-target series
    used: set[str] = set()
    for title, expr in dashboard_exprs():
        if is_capture(expr):
            continue  # test_capture_panels_use_only_what_a_running_capture_exports
        names = promql_metric_names(concrete(expr))
        assert names, f"{title}: no metric in {expr!r}"
        unknown = names - allowed
        assert not unknown, f"{title}: {sorted(unknown)} not exported by netclock"
        used |= names
    # The catalogue's main families are on the dashboard.
    for name in (
        "netclock_source_offset_seconds",
        "netclock_error_bound_seconds",
        "netclock_source_path_delay_seconds",
        "netclock_rate_ppb",
        "netclock_lock_state",
        "netclock_grandmaster_info",
        "netclock_packets_malformed_total",
    ):
        assert name in used, name


def test_capture_panels_use_only_what_a_running_capture_exports(capture_exposition: str) -> None:
    """The capture frame stats panels against a live scrape of `netclock capture
    --metrics-port` stamping a headless PipeWire test pattern with the running agent's time."""
    from netclock.metrics import CAPTURE_CATALOGUE

    exported = sample_names(capture_exposition)
    exprs = [(title, expr) for title, expr in dashboard_exprs() if is_capture(expr)]
    used: set[str] = set()
    for title, expr in exprs:
        names = promql_metric_names(concrete(expr))
        assert names and not names - exported, f"{title}: {sorted(names - exported)}"
        used |= names
    # Every counter, the latency histogram, the uncertainty and the sync flag are shown.
    families = {n.removesuffix("_bucket") for n in used}
    assert families == {m.name for m in CAPTURE_CATALOGUE}
    assert 'netclock_capture_synced{kind="pipewire",source="pipewire:ci-video-src"} 1.0' in (
        capture_exposition
    )  # stamped with the running agent's LOCKED time


def test_running_daemons_export_the_catalogue(
    exposed_names: set[str], catalogue_names: set[str]
) -> None:
    """The metrics module serves every catalogue entry, and the running pair serves all of them
    but those its sources cannot fill (an NTP-following daemon announces no TAI-UTC offset)."""
    from netclock.metrics import CATALOGUE

    catalogue = {m.name for m in CATALOGUE}
    assert catalogue <= catalogue_names
    assert catalogue - exposed_names <= {"netclock_utc_offset_seconds"}
    assert "process_resident_memory_bytes" in exposed_names  # the process collector too


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")
def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": concrete(expr)}
        for i, (_, expr) in enumerate(dashboard_exprs())
    ]
    f = tmp_path / "dashboard-exprs.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = subprocess.run(
        ["promtool", "check", "rules", str(f)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_panels_cover_issue_8() -> None:
    d = dashboard()
    titles = " | ".join(p["title"].lower() for p in d["panels"])
    for words in (
        "offset", "error bound", "path delay", "rate", "lock state", "grandmaster",
        "cross-agent spread", "malformed", "capture frame",
    ):
        assert words in titles, words
    kinds = {p["title"]: p["type"] for p in d["panels"]}
    assert kinds["Lock state"] == "state-timeline"
    assert kinds["Grandmaster identity"] == "table"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24


def test_provisioning_matches_thedashboard() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    source = ds["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    var = next(v for v in dashboard()["templating"]["list"] if v["name"] == "datasource")
    assert var["current"]["value"] == source["uid"]
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "netclock.yml").read_text())
    assert prov["providers"][0]["type"] == "file"
