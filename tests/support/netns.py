"""Network namespaces for tests and benchmarks: veth pairs, a bridge or a star; guaranteed teardown.

Every namespace is named ``nct<pid>-<n>-<role>`` so concurrent runs never collide, and a crashed
run's leftovers (whose pid is gone) are removed by :func:`cleanup_stale` on the next start. All
addresses (10.2xx.x.x/24, fd00:2xx::/64) exist only inside the namespaces made here.

Usage::

    from tests.support.netns import Topology, require_netns

    require_netns()                       # pytest.skip unless root and `ip` exist
    with Topology.veth_pair() as topo:    # or Topology.bridge(3)
        a, b = topo.nodes                 # Node: .ns (name), .ifname, .ip4, .ip6
        proc = b.popen(["ptp4l", "-f", cfg])           # child of this process; stopped at exit
        sock = a.call(open_udp, a.ip4, 0)              # create a socket inside namespace a
        out = b.run(["ip", "addr"]).stdout

Processes started with :meth:`Node.popen` are stopped at teardown (terminate, then kill) and
always waited for; namespaces are deleted even when the body raises.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

PREFIX = "nct"
_NAME_RE = re.compile(rf"^{PREFIX}(\d+)-")
_counter = itertools.count()
_CLONE_NEWNET = 0x40000000
REPO_ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")


def skip_reason() -> str | None:
    """Why namespace tests cannot run here, or ``None`` when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 `ip` not found"
    return None


def require_netns() -> None:
    """``pytest.skip`` (with the reason) unless namespaces can be made here."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)


def topology_fixture(n: int, subnet: int, *tools: str, veth: bool = False) -> Any:
    """A pytest fixture that yields a new :class:`Topology`: ``n`` namespaces on a bridge, or
    (``veth``) two joined by one veth pair, on ``10.{subnet}.0.0/24``. It skips, naming what
    is missing, unless namespaces can be made here and every one of ``tools`` is on PATH."""

    @pytest.fixture
    def fixture() -> Iterator[Topology]:
        require_netns()
        missing = [t for t in tools if shutil.which(t) is None]
        if missing:
            pytest.skip(f"{', '.join(missing)} not installed")
        made = Topology.veth_pair(subnet=subnet) if veth else Topology.bridge(n, subnet=subnet)
        with made as t:
            yield t

    return fixture


def _run(cmd: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def list_namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale(prefix_re: re.Pattern[str] = _NAME_RE) -> list[str]:
    """Delete namespaces left by crashed runs (ours by name, whose creator pid is gone)."""
    removed = []
    for name in list_namespaces():
        m = prefix_re.match(name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            _run(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


def stop_process(proc: subprocess.Popen[Any], timeout: float = 3.0) -> int:
    """Stop a child by PID: SIGTERM, wait, SIGKILL, wait. Returns its exit status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    return proc.wait()


def _setns(name: str) -> None:
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns = getattr(os, "setns", None)
        if setns is not None:  # Python 3.12+
            setns(fd, _CLONE_NEWNET)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def call_in_namespace(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a short-lived thread that joined namespace ``name``.

    The network namespace is per thread on Linux, so sockets created by ``fn`` live in ``name``
    and keep working when used from any thread afterwards (e.g. the asyncio loop). Interface
    names are resolved in ``name`` too. The calling thread is not affected.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            _setns(name)
            result.append(fn(*args, **kwargs))
        except BaseException as exc:  # re-raised in the caller
            error.append(exc)

    t = threading.Thread(target=target, name=f"netns-{name}")
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


@dataclass
class Node:
    """One namespace with one interface (``ifname``) and its IPv4/IPv6 addresses."""

    ns: str
    ifname: str = "eth0"
    ip4: str = ""
    ip6: str = ""
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]

    def run(self, cmd: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command to completion inside the namespace (captured text output)."""
        return _run([*self.exec_prefix(), *cmd], check=check)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "-n", self.ns, *args], check=check)

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a child in the namespace; it is stopped and waited for at teardown."""
        proc: subprocess.Popen[Any] = subprocess.Popen([*self.exec_prefix(), *cmd], **kwargs)
        self.processes.append(proc)
        return proc

    def python(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``python ARGS`` in the namespace with the repository on ``PYTHONPATH``."""
        env = dict(kwargs.pop("env", None) or os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        return self.popen([sys.executable, *args], env=env, **kwargs)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in this namespace (see :func:`call_in_namespace`)."""
        return call_in_namespace(self.ns, fn, *args, **kwargs)

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 3.0) -> int:
        rc = stop_process(proc, timeout)
        if proc in self.processes:
            self.processes.remove(proc)
        return rc


class Topology:
    """A set of namespaces joined by a veth pair or a bridge; a context manager.

    ``nodes`` are the endpoint namespaces; ``hub`` is the namespace holding the bridge (bridge
    topologies only). Node ``i`` gets ``10.<subnet>.0.<i+1>/24`` and ``fd00:<subnet>::<i+1>/64``.
    """

    def __init__(self, tag: str = "t") -> None:
        self.base = f"{PREFIX}{os.getpid()}-{next(_counter)}{tag}"
        self.nodes: list[Node] = []
        self.hub: Node | None = None
        self.links: list[tuple[str, str]] = []
        self._created: list[str] = []

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def veth_pair(cls, subnet: int = 202) -> Topology:
        """Two namespaces ``a`` and ``b`` joined directly by a veth pair."""
        topo = cls("v")
        try:
            a, b = topo._add_ns("a"), topo._add_ns("b")
            _run(["ip", "-n", a, "link", "add", "eth0", "type", "veth",
                  "peer", "name", "eth0", "netns", b])
            for i, ns in enumerate((a, b)):
                topo.nodes.append(topo._configure_node(ns, i, subnet))
        except BaseException:
            topo.close()
            raise
        return topo

    @classmethod
    def bridge(cls, n: int = 2, subnet: int = 201) -> Topology:
        """``n`` namespaces, each with eth0 plugged into bridge ``br0`` in a hub namespace.

        Multicast snooping is off, so multicast (224.0.1.129, ff0e::181) floods to every port.
        """
        if not 1 <= n <= 200:
            raise ValueError("1..200 nodes")
        topo = cls("b")
        try:
            hub = topo._add_ns("hub")
            topo.hub = Node(hub, ifname="br0")
            topo.hub.ip("link", "set", "lo", "up")
            topo.hub.ip("link", "add", "br0", "type", "bridge", "stp_state", "0",
                        "mcast_snooping", "0", "forward_delay", "0")
            topo.hub.ip("link", "set", "br0", "up")
            for i in range(n):
                ns = topo._add_ns(f"n{i}")
                port = f"p{i}"
                _run(["ip", "-n", hub, "link", "add", port, "type", "veth",
                      "peer", "name", "eth0", "netns", ns])
                topo.hub.ip("link", "set", port, "master", "br0")
                topo.hub.ip("link", "set", port, "up")
                topo.nodes.append(topo._configure_node(ns, i, subnet))
        except BaseException:
            topo.close()
            raise
        return topo

    @classmethod
    def star(cls, n: int = 2, subnet: int = 203) -> Topology:
        """A centre namespace with a direct veth link to each of ``n`` leaf namespaces.

        No bridge: this kernel's bridge adds ~10-20 µs each way, with µs of jitter, to every
        packet (a cold forwarding path), while a veth pair adds ~2 µs. ``nodes[0]`` is the
        centre, with interfaces ``eth0``..``eth<n-1>``; ``nodes[1 + i]`` is leaf ``i`` (``eth0``).
        Link ``i`` is ``10.<subnet>.<i>.0/24`` (``fd00:<subnet>:<i>::/64``): the centre is
        ``.1``, the leaf ``.2``; ``links[i]`` is that (centre, leaf) IPv4 pair. The centre's own
        address (``nodes[0].ip4``, ``10.<subnet>.255.1`` on its loopback) is routed from every
        leaf over its link, so a server there has one address for all leaves.
        """
        if not 1 <= n <= 200:
            raise ValueError("1..200 leaves")
        topo = cls("s")
        try:
            centre = topo._add_ns("c")
            service = f"10.{subnet}.255.1"
            topo.nodes.append(Node(centre, "eth0", service, f"fd00:{subnet}:ff::1"))
            topo.nodes[0].ip("link", "set", "lo", "up")
            topo.nodes[0].ip("addr", "add", f"{service}/32", "dev", "lo")
            for i in range(n):
                leaf = topo._add_ns(f"l{i}")
                _run(["ip", "-n", centre, "link", "add", f"eth{i}", "type", "veth",
                      "peer", "name", "eth0", "netns", leaf])
                for ns, ifname, host in ((centre, f"eth{i}", 1), (leaf, "eth0", 2)):
                    node = Node(ns, ifname)
                    if ns == leaf:
                        node.ip("link", "set", "lo", "up")
                    node.ip("addr", "add", f"10.{subnet}.{i}.{host}/24", "dev", ifname)
                    node.ip("-6", "addr", "add", f"fd00:{subnet}:{i}::{host}/64", "dev", ifname,
                            "nodad")
                    node.ip("link", "set", ifname, "up")
                topo.nodes.append(Node(leaf, "eth0", f"10.{subnet}.{i}.2", f"fd00:{subnet}:{i}::2"))
                topo.nodes[-1].ip("route", "add", "224.0.0.0/4", "dev", "eth0")
                topo.nodes[-1].ip("route", "add", f"{service}/32", "via", f"10.{subnet}.{i}.1")
                topo.links.append((f"10.{subnet}.{i}.1", f"10.{subnet}.{i}.2"))
        except BaseException:
            topo.close()
            raise
        return topo

    # -- helpers -----------------------------------------------------------------------------

    def _add_ns(self, role: str) -> str:
        name = f"{self.base}-{role}"
        _run(["ip", "netns", "add", name])
        self._created.append(name)
        return name

    @staticmethod
    def _configure_node(ns: str, index: int, subnet: int) -> Node:
        node = Node(ns, "eth0", f"10.{subnet}.0.{index + 1}", f"fd00:{subnet}::{index + 1}")
        node.ip("link", "set", "lo", "up")
        node.ip("addr", "add", f"{node.ip4}/24", "dev", "eth0")
        node.ip("-6", "addr", "add", f"{node.ip6}/64", "dev", "eth0", "nodad")
        node.ip("link", "set", "eth0", "up")
        # Multicast without an explicit IP_MULTICAST_IF: route 224/4 out of eth0.
        node.ip("route", "add", "224.0.0.0/4", "dev", "eth0")
        return node

    @property
    def names(self) -> list[str]:
        return list(self._created)

    def close(self) -> None:
        """Stop every child started through the nodes, then delete the namespaces."""
        for node in [*self.nodes, *([self.hub] if self.hub else [])]:
            for proc in list(node.processes):
                node.stop(proc)
        for name in reversed(self._created):
            _run(["ip", "netns", "del", name], check=False)
        self._created.clear()

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def veth_pair(subnet: int = 202) -> Iterator[Topology]:
    """Context manager form of :meth:`Topology.veth_pair` (skips the test when not possible)."""
    require_netns()
    cleanup_stale()
    with Topology.veth_pair(subnet) as topo:
        yield topo


@contextlib.contextmanager
def bridge(n: int = 2, subnet: int = 201) -> Iterator[Topology]:
    """Context manager form of :meth:`Topology.bridge` (skips the test when not possible)."""
    require_netns()
    cleanup_stale()
    with Topology.bridge(n, subnet) as topo:
        yield topo


@contextlib.contextmanager
def star(n: int = 2, subnet: int = 203) -> Iterator[Topology]:
    """Context manager form of :meth:`Topology.star` (skips the test when not possible)."""
    require_netns()
    cleanup_stale()
    with Topology.star(n, subnet) as topo:
        yield topo


@pytest.fixture
def netns_veth() -> Iterator[Topology]:
    """Fixture: a fresh veth pair (two nodes), torn down after the test."""
    with veth_pair() as topo:
        yield topo


@pytest.fixture
def netns_bridge() -> Iterator[Topology]:
    """Fixture: three nodes on a bridge, torn down after the test."""
    with bridge(3) as topo:
        yield topo
