"""deploy/grafana: the dashboard parses, covers what issue 8 lists, and every PromQL
expression is valid (promtool) and uses only metrics a live netclock endpoint exports."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import DEPLOY, promql_metric_names

yaml = pytest.importorskip("yaml", reason="PyYAML (pip pyyaml) missing")

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "netclock.json"


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def _exprs() -> list[tuple[str, str]]:
    d = _dashboard()
    out = [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]
    out += [(f"annotation {a['name']}", a["expr"]) for a in d["annotations"]["list"]]
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            out.append((f"variable {v['name']}", v["definition"]))
    return out


def _concrete(expr: str) -> str:
    """Grafana variables replaced the way Grafana does for 'All'."""
    if expr.startswith("label_values("):
        # label_values(metric, label) is Grafana's; the metric part is plain PromQL.
        expr = expr[len("label_values(") :].rsplit(",", 1)[0]
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$instance", ".*")
        .replace("$domain", ".*")
    )


def test_dashboard_uses_only_exported_metrics(exposed_names: set[str]) -> None:
    allowed = exposed_names | {"up"}  # up: Prometheus' own per-target series
    used: set[str] = set()
    for title, expr in _exprs():
        names = promql_metric_names(_concrete(expr))
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


def test_exported_names_cover_the_catalogue(exposed_names: set[str]) -> None:
    """The live scrape the other checks rely on really exports every catalogue entry."""
    from netclock.metrics import CATALOGUE

    assert {m.name for m in CATALOGUE} <= exposed_names


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing")
def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": _concrete(expr)}
        for i, (_, expr) in enumerate(_exprs())
    ]
    f = tmp_path / "dashboard-exprs.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = subprocess.run(
        ["promtool", "check", "rules", str(f)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_panels_cover_issue_8() -> None:
    d = _dashboard()
    titles = " | ".join(p["title"].lower() for p in d["panels"])
    for words in (
        "offset", "error bound", "path delay", "rate", "lock state", "grandmaster",
        "cross-agent spread", "malformed",
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


def test_provisioning_matches_the_dashboard() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    source = ds["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    var = next(v for v in _dashboard()["templating"]["list"] if v["name"] == "datasource")
    assert var["current"]["value"] == source["uid"]
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "netclock.yml").read_text())
    assert prov["providers"][0]["type"] == "file"
