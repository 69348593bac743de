"""deploy/Dockerfile: static checks (the Docker engine does not run on this machine, so the
image is never built here; hadolint is not available either)."""

from __future__ import annotations

import json
import re

from deploy_helpers import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    ins = _instructions()
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    return ins[last_from:]


def test_runs_as_a_non_root_user() -> None:
    users = [arg for op, arg in _final_stage() if op == "USER"]
    assert users, "no USER in the final stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: Kubernetes runAsNonRoot can verify it
    assert "useradd --system --uid " + uid in DOCKERFILE.read_text().replace("\\\n", " ") or (
        f"--uid {uid}" in DOCKERFILE.read_text()
    )


def test_healthcheck_runs_netclock_status() -> None:
    checks = [arg for op, arg in _final_stage() if op == "HEALTHCHECK"]
    assert len(checks) == 1
    cmd = json.loads(checks[0].split("CMD", 1)[1].strip())
    assert cmd[:2] == ["netclock", "status"]


def test_capabilities_are_file_capabilities_limited_to_net() -> None:
    text = "\n".join(f"{op} {arg}" for op, arg in _instructions())  # comments excluded
    assert "privileged" not in text.replace("unprivileged", "")
    assert "sys_time" not in text.lower() and "sys_admin" not in text.lower()
    caps = re.findall(r"setcap\s+(\S+)\s", text)
    assert caps == ["cap_net_bind_service=ep", "cap_net_bind_service,cap_net_raw=ep"]
    entry = json.loads(next(arg for op, arg in _final_stage() if op == "ENTRYPOINT"))
    assert entry == ["/usr/local/bin/netclock-python", "-m", "netclock"]


def test_slim_base_and_copied_paths_exist() -> None:
    args = dict(
        arg.split("=", 1) for op, arg in _instructions() if op == "ARG" and "=" in arg
    )
    assert "slim" in args["PYTHON_IMAGE"]
    for op, arg in _instructions():
        if op == "COPY" and not arg.startswith("--from"):
            for src in arg.split()[:-1]:
                if src != "README.md":  # the lead's file; exists once the README lands
                    assert (ROOT / src).exists(), src
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for needed in ("!netclock/", "!capture/", "!pyproject.toml", "!deploy/configs/"):
        assert needed in ignore
