"""docker-compose.yml: compose-spec schema, `docker-compose config`, and the security shape.

compose_spec.json is vendored from Debian's docker-compose 1.29.2 package
(/usr/lib/python3/dist-packages/compose/config/compose_spec.json; the compose-spec project's
schema, Apache-2.0). The Docker engine does not run on this machine, so nothing is started.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import DEPLOY, ROOT

yaml = pytest.importorskip("yaml", reason="PyYAML (pip pyyaml) missing")

COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).with_name("compose_spec.json")
NETCLOCK_SERVICES = {"grandmaster", "agent-a", "agent-b", "capture-agent"}
ALLOWED_CAPS = {"NET_BIND_SERVICE", "NET_RAW"}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the x-netclock anchor (merge keys)
    assert isinstance(data, dict)
    return data


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft201909Validator(schema)


def _walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}", k, v
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield f"{path}[{i}]", None, v
            yield from _walk(v, f"{path}[{i}]")


def test_compose_file_matches_the_compose_spec_schema() -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in _validator().iter_errors(_compose())]
    assert not errors, errors


def test_schema_check_is_not_vacuous() -> None:
    bad = _compose()
    bad["services"]["agent-a"]["privilegd"] = True  # misspelt key
    bad["services"]["agent-b"]["cap_add"] = "NET_BIND_SERVICE"  # not a list
    messages = " ".join(e.message for e in _validator().iter_errors(bad))
    assert "privilegd" in messages
    assert "is not of type 'array'" in messages


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose missing")
def test_docker_compose_config_accepts_the_file() -> None:
    """Debian's docker-compose 1.29 validates and resolves the file offline (no engine)."""
    r = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "--services"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) == NETCLOCK_SERVICES | {"capture", "prometheus", "grafana"}


def test_services_of_the_rig() -> None:
    services = _compose()["services"]
    assert set(services) >= NETCLOCK_SERVICES
    assert {"prometheus", "grafana"} <= set(services)


def test_nothing_is_privileged_and_no_clock_capability() -> None:
    for path, key, value in _walk(_compose()):
        assert key not in {"privileged", "pid", "ipc"} or value in (False, None), path
        assert key != "network_mode" or value in ("none",), f"{path}: {value}"
        if isinstance(value, str):
            assert "SYS_TIME" not in value.upper(), path
            assert "SYS_ADMIN" not in value.upper(), path


def test_netclock_containers_are_non_root_with_minimal_capabilities() -> None:
    services = _compose()["services"]
    for name in NETCLOCK_SERVICES | {"capture"}:
        svc = services[name]
        uid = int(str(svc["user"]).split(":")[0])
        assert uid != 0, name
        assert svc["cap_drop"] == ["ALL"], name
        assert set(svc.get("cap_add", [])) <= ALLOWED_CAPS, name
        assert svc.get("read_only") is True, name
    assert "cap_add" not in services["capture"]  # reads shared memory only
    for name in ("prometheus", "grafana"):
        assert int(str(services[name]["user"]).split(":")[0]) != 0
        assert services[name]["cap_drop"] == ["ALL"]


def test_healthcheck_runs_netclock_status() -> None:
    services = _compose()["services"]
    for name in NETCLOCK_SERVICES:
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "netclock", "status"], name


def test_user_network_and_prometheus_reaches_every_agent() -> None:
    data = _compose()
    assert data["networks"]["timenet"]["driver"] == "bridge"
    for name in NETCLOCK_SERVICES | {"prometheus", "grafana"}:
        assert data["services"][name]["networks"] == ["timenet"], name
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t.split(":")[0]
        for j in prom["scrape_configs"]
        if j["job_name"] == "netclock"
        for sc in j["static_configs"]
        for t in sc["targets"]
    }
    assert targets == NETCLOCK_SERVICES


def test_bind_mounts_exist_and_configs_are_the_example_configs() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src, dst = vol.split(":")[:2]
            if src.startswith("./"):
                assert (ROOT / src).exists(), f"{name}: {src}"
            if dst == "/etc/netclock/netclock.toml":
                assert src.startswith("./deploy/configs/"), f"{name}: {src}"
    grafana = services["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    prov = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "netclock.yml").read_text()
    )
    dash_dir = prov["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{dash_dir}:ro" in grafana


def test_capture_reads_the_capture_agents_segment_read_only() -> None:
    services = _compose()["services"]
    assert "capture-run:/run/netclock" in services["capture-agent"]["volumes"]
    assert "capture-run:/run/netclock:ro" in services["capture"]["volumes"]
    assert services["capture"]["entrypoint"] == ["netclock"]
    assert services["capture"]["command"][0] == "capture"


def test_prometheus_scrapes_the_frame_stamper() -> None:
    """`capture` serves netclock_capture_* on :9469 (its own job, on timenet, no capability)."""
    svc = _compose()["services"]["capture"]
    cmd = svc["command"]
    assert cmd[cmd.index("--metrics-port") + 1] == "9469"
    assert cmd[cmd.index("--metrics-address") + 1] == "0.0.0.0"
    assert svc["networks"] == ["timenet"] and "network_mode" not in svc
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "netclock-capture")
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [f"{svc['hostname']}:9469"]
