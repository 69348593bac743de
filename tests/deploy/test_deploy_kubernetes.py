"""deploy/kubernetes: API-schema validation (kubernetes-validate) and the security properties.

kubernetes-validate (PyPI) ships the Kubernetes OpenAPI schemas, so the check runs offline;
the Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule) are not in those schemas and
are checked for structure here instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import DEPLOY

from netclock.config import load_text

yaml = pytest.importorskip("yaml", reason="PyYAML (pip pyyaml) missing")

K8S = DEPLOY / "kubernetes"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
ALLOWED_CAPS = {"NET_BIND_SERVICE", "NET_RAW"}
BUILTIN_KINDS = {"Namespace", "ConfigMap", "DaemonSet", "Deployment", "Service"}


def _docs() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for p in MANIFESTS:
        for d in yaml.safe_load_all(p.read_text()):
            if d:
                out.append((p, d))
    return out


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in _docs() if d["kind"] == kind]


def _workloads() -> list[dict[str, Any]]:
    return _by_kind("DaemonSet") + _by_kind("Deployment")


def test_builtin_resources_validate_against_the_api_schemas() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    seen = set()
    for _path, doc in _docs():
        if doc["kind"] not in BUILTIN_KINDS:
            continue
        seen.add(doc["kind"])
        kv.validate(doc, kv.latest_version(), strict=True)  # raises ValidationError
    assert seen == BUILTIN_KINDS


def test_schema_validation_is_not_vacuous() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    ds = _by_kind("DaemonSet")[0]
    ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privilegd"] = False
    with pytest.raises(kv.ValidationError):
        kv.validate(ds, kv.latest_version(), strict=True)


def test_kustomization_lists_every_builtin_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    builtin = {p.name for p, d in _docs() if d["kind"] in BUILTIN_KINDS}
    assert set(kust["resources"]) == builtin


def test_no_privileged_container_and_no_clock_capability() -> None:
    for path, doc in _docs():
        text = yaml.safe_dump(doc)
        assert "SYS_TIME" not in text, path
        assert "SYS_ADMIN" not in text, path
        assert "privileged: true" not in text, path


def test_host_network_only_for_agent_and_grandmaster() -> None:
    host = {
        (w["kind"], w["metadata"]["name"])
        for w in _workloads()
        if w["spec"]["template"]["spec"].get("hostNetwork")
    }
    assert host == {("DaemonSet", "netclock-agent"), ("Deployment", "netclock-grandmaster")}
    for w in _workloads():
        spec = w["spec"]["template"]["spec"]
        assert not spec.get("hostPID") and not spec.get("hostIPC")
        assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_containers_non_root_drop_all_and_add_only_what_is_needed() -> None:
    for w in _workloads():
        spec = w["spec"]["template"]["spec"]
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] != 0
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["privileged"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert set(sc["capabilities"]["add"]) <= ALLOWED_CAPS
            assert sc["readOnlyRootFilesystem"] is True
            assert sc.get("runAsUser", pod_sc["runAsUser"]) != 0
        for c in spec.get("initContainers", []):
            # The one root step: hand the hostPath dirs to uid 10001, with CAP_CHOWN only.
            sc = c["securityContext"]
            assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}


def test_probes_use_netclock_status_and_shared_memory() -> None:
    for w in _workloads():
        for c in w["spec"]["template"]["spec"]["containers"]:
            assert c["livenessProbe"]["exec"]["command"][:2] == ["netclock", "status"]
            assert c["readinessProbe"]["exec"]["command"][:2] == ["netclock", "now"]


def test_agent_runtime_dir_is_a_host_path_for_local_readers() -> None:
    ds = _by_kind("DaemonSet")[0]
    spec = ds["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert vols["runtime"]["hostPath"]["path"] == "/run/netclock"
    assert mounts["runtime"]["mountPath"] == "/run/netclock"
    assert vols["config"]["configMap"]["name"] == "netclock-agent"
    assert mounts["config"]["mountPath"] == "/etc/netclock"


def test_configmaps_hold_valid_configs() -> None:
    for cm in _by_kind("ConfigMap"):
        cfg = load_text(cm["data"]["netclock.toml"], cm["metadata"]["name"])
        assert cfg.ptp.enabled
        assert cfg.metrics.port == 9468
        assert cfg.publish.shm_path == "/run/netclock/clock.shm"


def test_configmaps_are_the_example_configs() -> None:
    """Same knobs as deploy/configs/*.toml; only the NTP server name differs (Service DNS)."""
    import tomllib

    pairs = {"netclock-agent": "agent.toml", "netclock-grandmaster": "grandmaster.toml"}
    for cm in _by_kind("ConfigMap"):
        mine = tomllib.loads(cm["data"]["netclock.toml"])
        example = tomllib.loads((DEPLOY / "configs" / pairs[cm["metadata"]["name"]]).read_text())
        for server in example.get("ntp", {}).get("server", []):
            server["address"] = "netclock-grandmaster.netclock.svc"
        assert mine == example


def test_metrics_are_discoverable() -> None:
    for w in _workloads():
        ann = w["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true"
        assert ann["prometheus.io/port"] == "9468"
    sm = _by_kind("ServiceMonitor")[0]
    svc = next(s for s in _by_kind("Service") if s["metadata"]["name"] == "netclock-metrics")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"]


def test_prometheus_rule_matches_the_rule_files() -> None:
    groups = []
    for f in ("netclock-recording.yml", "netclock-alerts.yml"):
        groups += yaml.safe_load((DEPLOY / "prometheus" / "rules" / f).read_text())["groups"]
    rule = _by_kind("PrometheusRule")[0]
    assert rule["spec"]["groups"] == groups
