"""The image's privilege mechanism, for real: file capabilities on an interpreter copy.

deploy/Dockerfile gives a copy of the Python interpreter ``cap_net_bind_service=ep`` (and an
L2 copy ``+cap_net_raw``) so that the unprivileged user 10001 can bind PTP/NTP ports with the
container's capabilities reduced to NET_BIND_SERVICE. The Docker engine does not run here, so
this test rebuilds that arrangement with the same ``setcap`` arguments (read from the
Dockerfile) and runs it the way a container runtime would: uid/gid 10001, no supplementary
groups, the capability bounding set cut to what compose/Kubernetes add, in a fresh network
namespace (where ports below 1024 are privileged: ip_unprivileged_port_start = 1024). Nothing is
sent; sockets are only bound or opened.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY

TOOLS = ("setcap", "setpriv", "unshare")
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None for t in TOOLS),
    reason="needs root and setcap (libcap2-bin), setpriv and unshare (util-linux)",
)

BIND = (
    "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    "s.bind(('0.0.0.0', 319)); print('bound', s.getsockname()[1])"
)
RAW = (
    "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88F7)); "
    "print('raw ok')"
)
CAPS = "print([l for l in open('/proc/self/status') if l.startswith('CapEff')][0].split()[1])"
CAP_NET_BIND_SERVICE = 1 << 10
CAP_NET_RAW = 1 << 13


def _setcap_args() -> list[str]:
    return re.findall(r"setcap\s+(\S+)\s", (DEPLOY / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def interpreters() -> Iterator[dict[str, Path]]:
    """Copies of a system interpreter runnable by uid 10001, capabilities as in the image."""
    src = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if Path(p).exists()), "")
    if not src:
        pytest.skip("no system python3 that uid 10001 can run")
    # pytest's own tmp dirs are 0700 (root only); uid 10001 must reach the copies.
    d = Path(tempfile.mkdtemp(prefix="netclock-filecaps-"))
    d.chmod(0o755)
    try:
        yield _install(src, d)
    finally:
        shutil.rmtree(d)


def _install(src: str, d: Path) -> dict[str, Path]:
    plain, nbs, l2 = d / "python-plain", d / "netclock-python", d / "netclock-python-l2"
    for p in (plain, nbs, l2):
        shutil.copy(os.path.realpath(src), p)
        p.chmod(0o755)
    cap_nbs, cap_l2 = _setcap_args()
    for caps, p in ((cap_nbs, nbs), (cap_l2, l2)):
        r = subprocess.run(["setcap", caps, str(p)], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            pytest.skip(f"setcap unsupported on {d}: {r.stderr.strip()}")
    return {"plain": plain, "nbs": nbs, "l2": l2}


def _as_container_user(
    exe: Path, code: str, bounding: str, *, no_new_privs: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``exe -c code`` as 10001:10001 in a new netns with the given bounding set.

    The outer setpriv starts a shell as uid 10001, so the permitted set is empty at the final
    exec, as in a container whose user is not root.
    """
    inner = f"exec {'setpriv --no-new-privs ' if no_new_privs else ''}{exe} -I -S -c \"{code}\""
    cmd = [
        "unshare", "--net", "setpriv", "--reuid", "10001", "--regid", "10001", "--clear-groups",
        "--bounding-set", bounding, "/bin/sh", "-c", inner,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def test_fresh_namespace_keeps_low_ports_privileged() -> None:
    r = subprocess.run(
        ["unshare", "--net", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    assert int(r.stdout) == 1024


def test_dockerfile_grants_only_network_capabilities() -> None:
    assert _setcap_args() == ["cap_net_bind_service=ep", "cap_net_bind_service,cap_net_raw=ep"]


DENIED = "PermissionError: [Errno 13] Permission denied"  # from Python's bind()


def test_plain_interpreter_cannot_bind_319(interpreters: dict[str, Path]) -> None:
    r = _as_container_user(interpreters["plain"], BIND, "-all,+net_bind_service")
    assert DENIED in r.stderr, r.stderr
    ok = _as_container_user(interpreters["plain"], "print('runs')", "-all,+net_bind_service")
    assert ok.stdout.strip() == "runs", ok.stderr  # the user can run it: the bind is refused


def test_image_interpreter_binds_319_with_only_net_bind_service(
    interpreters: dict[str, Path],
) -> None:
    r = _as_container_user(interpreters["nbs"], BIND, "-all,+net_bind_service")
    assert r.returncode == 0 and r.stdout.strip() == "bound 319", r.stderr
    caps = _as_container_user(interpreters["nbs"], CAPS, "-all,+net_bind_service")
    assert int(caps.stdout, 16) == CAP_NET_BIND_SERVICE  # nothing else; no CAP_SYS_TIME


def test_capability_outside_the_bounding_set_refuses_to_start(
    interpreters: dict[str, Path],
) -> None:
    """cap_drop ALL without cap_add NET_BIND_SERVICE: exec fails rather than run half-able."""
    r = _as_container_user(interpreters["nbs"], BIND, "-all")
    assert r.returncode != 0
    assert re.search(r"exec: .*netclock-python: Operation not permitted", r.stderr), r.stderr


def test_no_new_privs_disables_the_file_capability(interpreters: dict[str, Path]) -> None:
    """Why the daemon's container keeps allowPrivilegeEscalation / omits no-new-privileges."""
    r = _as_container_user(interpreters["nbs"], BIND, "-all,+net_bind_service", no_new_privs=True)
    assert DENIED in r.stderr, r.stderr


def test_l2_interpreter_opens_raw_sockets_only_with_net_raw(
    interpreters: dict[str, Path],
) -> None:
    ok = _as_container_user(interpreters["l2"], RAW, "-all,+net_bind_service,+net_raw")
    assert ok.returncode == 0 and ok.stdout.strip() == "raw ok", ok.stderr
    caps = _as_container_user(interpreters["l2"], CAPS, "-all,+net_bind_service,+net_raw")
    assert int(caps.stdout, 16) == CAP_NET_BIND_SERVICE | CAP_NET_RAW
    no_raw = _as_container_user(interpreters["nbs"], RAW, "-all,+net_bind_service,+net_raw")
    assert "PermissionError: [Errno 1] Operation not permitted" in no_raw.stderr, no_raw.stderr
