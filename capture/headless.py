"""A private headless PipeWire session (pipewire + dbus-daemon + WirePlumber) for tests/benches.

All three run as direct children with a private ``XDG_RUNTIME_DIR``; :meth:`HeadlessPipeWire.stop`
terminates them by PID and waits (PID 1 here does not reap orphans). The config (see
shared/research/capture.md §2) gives a Dummy-Driver, a null audio sink ``ci-null-sink`` (capture
its monitor), a tone source ``ci-audio-src`` and an SPA ``ci-video-src`` pinned under the dummy
driver (0.3.65's videotestsrc segfaults when it drives, and serves only its first consumer).

The tone source is grouped with the null sink (``node.group = ci-audio``), so the sink's timer
drives it. When the tone source drove its own graph, under CPU load it logged "out of buffers"
and that graph stopped for good (seen: an ALSA read through pipewire-alsa blocked for ever,
both nodes "running"). The likely mechanism: a driver that skips its cycle when out of buffers
never runs the cycle in which its consumer hands buffers back. A sink's timer runs regardless.

The ``default`` metadata is WirePlumber's (its ``metadata`` module creates it). The config must
not create a second one: with two objects named ``default``, WirePlumber's default-nodes policy
and ``pw-metadata -n default`` each take whichever they see first, which depends on scheduling;
under CPU load they disagreed and the start-up wait never saw the default sink.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO

__all__ = ["CONFIG", "HeadlessPipeWire", "available"]

CONFIG = """
context.properties = {
    core.daemon = true
    core.name = pipewire-0
    default.clock.rate = 48000
    default.clock.quantum = 480
    default.clock.min-quantum = 480
    default.clock.max-quantum = 480
    support.dbus = false
}
context.spa-libs = {
    audio.convert.* = audioconvert/libspa-audioconvert
    audio.adapt.* = audioconvert/libspa-audioconvert
    support.* = support/libspa-support
    video.convert.* = videoconvert/libspa-videoconvert
    videotestsrc = videotestsrc/libspa-videotestsrc
    audiotestsrc = audiotestsrc/libspa-audiotestsrc
}
context.modules = [
    { name = libpipewire-module-protocol-native }
    { name = libpipewire-module-metadata }
    { name = libpipewire-module-spa-node-factory }
    { name = libpipewire-module-spa-device-factory }
    { name = libpipewire-module-client-node }
    { name = libpipewire-module-client-device }
    { name = libpipewire-module-access args = { } }
    { name = libpipewire-module-adapter }
    { name = libpipewire-module-link-factory }
    { name = libpipewire-module-session-manager }
]
context.objects = [
    { factory = spa-node-factory
        args = { factory.name = support.node.driver node.name = Dummy-Driver
                 node.group = pipewire.dummy priority.driver = 20000 } }
    { factory = adapter
        args = { factory.name = support.null-audio-sink node.name = ci-null-sink
                 node.description = "CI null sink" media.class = Audio/Sink
                 audio.position = [ FL FR ] audio.rate = 48000
                 node.driver = true priority.driver = 21000 monitor.channel-volumes = true
                 node.group = ci-audio
                 adapter.auto-port-config = { mode = dsp monitor = true position = preserve } } }
    { factory = adapter
        args = { factory.name = audiotestsrc node.name = ci-audio-src
                 node.description = "CI test tone" media.class = Audio/Source
                 node.group = ci-audio
                 adapter.auto-port-config = { mode = dsp monitor = false position = preserve } } }
    { factory = spa-node-factory
        args = { factory.name = videotestsrc node.name = ci-video-src
                 node.description = "CI test pattern" media.class = Video/Source
                 node.group = pipewire.dummy priority.driver = 1 } }
]
"""

_BINARIES = ("pipewire", "wireplumber", "dbus-daemon")


def available() -> str | None:
    """None when a headless session can start here, else the reason it cannot."""
    for b in _BINARIES:
        if shutil.which(b) is None:
            return f"{b} not installed"
    return None


class HeadlessPipeWire:
    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.runtime_dir = self.workdir / "run"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env: dict[str, str] = {}

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "pipewire-0"

    def start(self, timeout: float = 10.0) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.chmod(0o700)
        conf = self.workdir / "headless.conf"
        conf.write_text(CONFIG)
        bus = self.runtime_dir / "bus"
        env = dict(os.environ)
        env.update(
            XDG_RUNTIME_DIR=str(self.runtime_dir),
            DBUS_SESSION_BUS_ADDRESS=f"unix:path={bus}",
            PIPEWIRE_RUNTIME_DIR=str(self.runtime_dir),
            HOME=str(self.workdir),
            XDG_CONFIG_HOME=str(self.workdir / "config"),
            XDG_STATE_HOME=str(self.workdir / "state"),
        )
        env.pop("PIPEWIRE_REMOTE", None)
        self.env = env
        log = (self.workdir / "daemons.log").open("ab")
        try:
            self._spawn(["pipewire", "-c", str(conf)], env, log)
            self._spawn(
                [
                    "dbus-daemon",
                    "--session",
                    "--nofork",
                    "--nopidfile",
                    f"--address=unix:path={bus}",
                ],
                env,
                log,
            )
            self._wait_for(self.socket, timeout)
            self._wait_for(bus, timeout)
            self._spawn(["wireplumber"], env, log)
            self._wait_policy(timeout)
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args!r} exited with {p.returncode}; see {log.name}")
        except BaseException:
            self.stop()
            raise
        finally:
            log.close()

    def _spawn(self, argv: list[str], env: dict[str, str], log: IO[bytes]) -> None:
        self.procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))

    def _wait_for(self, path: Path, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > end:
                raise TimeoutError(f"{path} did not appear")
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError("a PipeWire session daemon exited at start-up")
            time.sleep(0.02)

    def _wait_policy(self, timeout: float) -> None:
        """Until WirePlumber's policy runs (it publishes the default sink); streams that
        connect earlier may never be linked."""
        if shutil.which("pw-metadata") is None:
            time.sleep(1.0)
            return
        end = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < end:
            try:
                r = subprocess.run(
                    ["pw-metadata", "-n", "default", "0"],
                    env=self.env,
                    capture_output=True,
                    text=True,
                    timeout=max(1.0, end - time.monotonic()),
                )
                seen = r.stdout + r.stderr
            except subprocess.TimeoutExpired:
                seen = "pw-metadata timed out"
            if "default.audio.sink" in seen:
                return
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError("a PipeWire session daemon exited at start-up")
            time.sleep(0.05)
        log = self.workdir / "daemons.log"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        raise TimeoutError(
            f"WirePlumber did not publish a default sink in {timeout} s; "
            f"pw-metadata said {seen.strip()!r}; daemons.log ends:\n{tail}"
        )

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.procs):
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()

    def apply_env(self) -> dict[str, str | None]:
        """Point this process's libpipewire/libasound at the session; returns old values."""
        old: dict[str, str | None] = {}
        for k in ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "PIPEWIRE_RUNTIME_DIR"):
            old[k] = os.environ.get(k)
            os.environ[k] = self.env[k]
        return old

    def __enter__(self) -> HeadlessPipeWire:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
