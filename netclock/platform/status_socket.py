"""The Unix-socket JSON status API: an asyncio server for the daemon, a blocking client.

Protocol: the client writes one JSON object on one line, the server answers with one JSON
object on one line; a connection may carry several requests. Requests:

* ``{"get": "status"}`` → ``{"ok": true, "status": <Snapshot.to_dict()>}``
* ``{"get": "version"}`` → ``{"ok": true, "version": "..."}``

Errors are ``{"ok": false, "error": "..."}`` (unknown request, bad JSON, no snapshot yet);
a line longer than :data:`MAX_LINE` closes the connection after the error.

The socket file is created with mode 0660 (connecting needs write permission), optionally
given to a group; a stale file left by a dead daemon is replaced, a live one is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any

from netclock import __version__
from netclock.observe import Snapshot
from netclock.platform.shm_writer import resolve_group
from netclock.shm import STATUS_SOCKET_FILENAME, default_runtime_dir

__all__ = [
    "MAX_LINE",
    "StatusServer",
    "StatusUnavailable",
    "candidate_socket_paths",
    "default_socket_path",
    "fetch_snapshot",
    "query",
    "resolve_socket_path",
]

MAX_LINE = 64 * 1024


class StatusUnavailable(RuntimeError):
    """The status socket cannot be reached or answered with an error."""


def default_socket_path() -> str:
    return os.path.join(default_runtime_dir(os.environ), STATUS_SOCKET_FILENAME)


def resolve_socket_path(configured: str = "", shm_path: str = "") -> str:
    """``publish.socket-path``: the configured path, else ``status.sock`` next to the
    shared-memory file, else the default."""
    if configured:
        return configured
    if shm_path:
        return os.path.join(os.path.dirname(os.path.abspath(shm_path)), STATUS_SOCKET_FILENAME)
    return default_socket_path()


def candidate_socket_paths(path: str | None = None) -> list[str]:
    """Where the client looks: ``path``, ``$NETCLOCK_SOCKET``, then the runtime dirs."""
    if path:
        return [path]
    env = os.environ.get("NETCLOCK_SOCKET")
    if env:
        return [env]
    paths = [default_socket_path()]
    system = os.path.join(default_runtime_dir({}), STATUS_SOCKET_FILENAME)
    if system not in paths:
        paths.append(system)
    return paths


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode() + b"\n"


class StatusServer:
    """Serve ``snapshot()`` on a Unix socket. ``async with StatusServer(path, fn): ...``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        snapshot: Callable[[], Snapshot | None],
        *,
        mode: int = 0o660,
        group: str | int | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self._snapshot = snapshot
        self._mode = mode
        self._group = group
        self._server: asyncio.AbstractServer | None = None
        self._ino: int | None = None
        #: the connections being served (closed with the server: Python 3.11's
        #: ``wait_closed`` does not wait for them, and a loop closed under them leaves them
        #: suspended for the garbage collector)
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if os.path.exists(self.path):
            if _alive(self.path):
                raise StatusUnavailable(
                    f"status socket {self.path} is in use (is another netclock daemon running?)"
                )
            os.unlink(self.path)  # stale: left by a daemon that died
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o755, exist_ok=True)
        self._server = await asyncio.start_unix_server(self._client, path=self.path, limit=MAX_LINE)
        try:
            os.chmod(self.path, self._mode)
            if self._group not in (None, ""):
                assert self._group is not None
                gid = resolve_group(self._group)
                try:
                    os.chown(self.path, -1, gid)
                except OSError as e:
                    raise PermissionError(
                        f"cannot give {self.path} to group {self._group!r} (gid {gid}): "
                        f"{e.strerror}; the daemon user must be a member (or have CAP_CHOWN)"
                    ) from e
            self._ino = os.stat(self.path).st_ino
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        while True:
            await asyncio.sleep(0)  # (a connection accepted just before: its task starts)
            clients = [t for t in self._clients if not t.done()]
            if not clients:
                break
            for t in clients:
                t.cancel()
            await asyncio.gather(*clients, return_exceptions=True)
        with contextlib.suppress(OSError):
            if self._ino is not None and os.stat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        self._ino = None

    async def __aenter__(self) -> StatusServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- requests -----------------------------------------------------------------------------
    def answer(self, line: bytes) -> dict[str, Any]:
        """The response to one request line (pure apart from reading the snapshot)."""
        try:
            req = json.loads(line)
        except ValueError as e:
            return {"ok": False, "error": f"request is not JSON: {e}"}
        if not isinstance(req, dict) or set(req) != {"get"}:
            return {"ok": False, "error": 'request must be {"get": "status"|"version"}'}
        what = req["get"]
        if what == "status":
            snap = self._snapshot()
            if snap is None:
                return {"ok": False, "error": "no status yet: the daemon is starting"}
            return {"ok": True, "status": snap.to_dict()}
        if what == "version":
            return {"ok": True, "version": __version__}
        return {"ok": False, "error": f"unknown request {what!r} (known: status, version)"}

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
            task.add_done_callback(self._clients.discard)
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), timeout=60)
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(_encode({"ok": False, "error": f"line over {MAX_LINE} bytes"}))
                    await writer.drain()
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                writer.write(_encode(self.answer(line)))
                await writer.drain()
        except (TimeoutError, ConnectionError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _alive(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(path)
        except OSError:
            return False
        return True


# ---------------------------------------------------------------------------------------------
# Client (blocking: the CLI and scripts)
# ---------------------------------------------------------------------------------------------


def query(
    path: str | None = None,
    request: dict[str, Any] | None = None,
    *,
    timeout: float = 2.0,
) -> dict[str, Any]:
    """Send one request and return the decoded response (``ok`` is checked)."""
    paths = candidate_socket_paths(path)
    chosen = next((p for p in paths if os.path.exists(p)), paths[0])
    req = request if request is not None else {"get": "status"}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(chosen)
            s.sendall(_encode(req))
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except FileNotFoundError:
            raise StatusUnavailable(
                f"no status socket at {' or '.join(paths)}: is the netclock daemon running?"
            ) from None
        except PermissionError as e:
            raise StatusUnavailable(
                f"cannot connect to {chosen}: {e.strerror} (join the group set by "
                "publish.socket-group)"
            ) from None
        except ConnectionRefusedError:
            raise StatusUnavailable(
                f"nothing listens on {chosen}: the netclock daemon is not running"
            ) from None
        except TimeoutError:
            raise StatusUnavailable(f"no answer from {chosen} within {timeout} s") from None
        except OSError as e:
            raise StatusUnavailable(f"cannot talk to {chosen}: {e}") from None
    try:
        resp = json.loads(buf)
    except ValueError:
        raise StatusUnavailable(f"bad answer from {chosen}: {buf[:80]!r}") from None
    if not isinstance(resp, dict):
        raise StatusUnavailable(f"bad answer from {chosen}: {buf[:80]!r}")
    if not resp.get("ok"):
        raise StatusUnavailable(f"{chosen}: {resp.get('error', 'error')}")
    return resp


def fetch_snapshot(path: str | None = None, *, timeout: float = 2.0) -> Snapshot:
    """``{"get": "status"}`` → :class:`Snapshot`."""
    return Snapshot.from_dict(query(path, {"get": "status"}, timeout=timeout)["status"])
