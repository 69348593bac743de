"""NTP server access control for real: three namespaces on a bridge, ntpsec's ntpdig as the
client. The server answers the allowed namespace and gives the denied one nothing (or, with
``deny-kod``, a KoD DENY that netclock's own client obeys). No clock is touched: ntpdig only
measures (no -S/-s), and every namespace shares the system clock, so the true offset is 0.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemons import daemon_config, daemon_log, open_clock, start_daemon, wait_for
from tests.support.netns import Node, Topology, topology_fixture

pytestmark = pytest.mark.interop


topo = topology_fixture(3, 221, "ntpdig")


def ntpdig(node: Node, server: str, timeout_s: int = 1) -> dict[str, Any] | None:
    """One ntpdig measurement (never sets the clock): the JSON result, or None (no answer)."""
    r = node.run(["ntpdig", "-j", "-t", str(timeout_s), "-p", "2", server], check=False)
    try:
        return dict(json.loads(r.stdout))
    except ValueError:
        return None


def test_daemon_serves_the_allowed_namespace_only(topo: Topology, tmp_path: Path) -> None:
    srv, allowed, denied = topo.nodes
    body = f"""
[reference]
enabled = true
interval-s = 0.1
[ntp]
serve = true
listen-address = "{srv.ip4}"
listen-port = 123
allow = "{allowed.ip4}/32, fd00::/8"
deny = "{denied.ip4}"
"""
    cfg = daemon_config(tmp_path, "server", body)
    start_daemon(srv, cfg)
    assert open_clock(tmp_path / "server" / "clock.shm", 15.0) is not None, daemon_log(cfg)
    result: dict[str, Any] | None = None

    def answered() -> bool:
        nonlocal result
        result = ntpdig(allowed, srv.ip4)
        return result is not None and "offset" in result

    assert wait_for(answered, 15.0, 0.5), daemon_log(cfg)
    assert result is not None and abs(result["offset"]) < 0.01, result
    assert ntpdig(denied, srv.ip4, timeout_s=2) is None  # silence, not a KoD
    log = daemon_log(cfg)
    assert "Traceback" not in log, log


def test_cli_server_sends_kod_deny_to_a_denied_client(topo: Topology) -> None:
    srv, allowed, denied = topo.nodes
    proc = srv.python(
        ["-m", "netclock", "ntp", "serve", "--listen", f"{srv.ip4}:123",
         "--deny", f"{denied.ip4}/32", "--deny-kod", "--duration", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert "serving NTP on" in first, first
    ok = ntpdig(allowed, srv.ip4)
    assert ok is not None and abs(ok["offset"]) < 0.01, ok

    def query(node: Node) -> subprocess.CompletedProcess[str]:
        p = node.python(["-m", "netclock", "ntp", "query", srv.ip4, "-n", "2", "--timeout", "3"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = p.communicate(timeout=30)
        node.stop(p)
        return subprocess.CompletedProcess(p.args, p.returncode, out, "")

    refused = query(denied)
    assert refused.returncode == 1 and "KoD DENY" in refused.stdout, refused.stdout
    assert query(allowed).returncode == 0
    srv.stop(proc)
    out = proc.stdout.read()
    m = re.search(r"denied (\d+) deny-kod (\d+)", out)
    assert m is not None, out
    assert int(m[1]) >= 1 and int(m[2]) == 1, out  # one request, one KoD: the client stopped
