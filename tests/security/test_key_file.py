"""Keys-file permission check: `netclock ntp serve --key-file` and `netclock run` with
``[ntp] keys-file`` refuse, with exit status 2 and a message naming the file and its mode or
owner, a keys file other users could read or change (the ssh rule for private keys)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from netclock.ntp.auth import KeyFileError
from netclock.platform.ntp_transport import load_key_file

REPO = Path(__file__).resolve().parents[2]
KEYS = "1 SHA1 HEX:0123456789ABCDEF0123456789ABCDEF01234567\n"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown to other users needs root")


def keyfile(tmp: Path, mode: int, uid: int | None = None, gid: int | None = None) -> Path:
    p = tmp / f"ntp-{mode:o}.keys"
    p.write_text(KEYS)
    p.chmod(mode)
    if uid is not None or gid is not None:
        os.chown(p, -1 if uid is None else uid, -1 if gid is None else gid)
    return p


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_file_of_the_running_user_is_read(tmp_path: Path, mode: int) -> None:
    keys = load_key_file(str(keyfile(tmp_path, mode)))
    assert list(keys) == [1]


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o644, "group and others"), (0o604, "others"), (0o620, "group"), (0o602, "others"),
     (0o660, "group"), (0o601, "others")],
)
def test_group_or_other_access_is_refused_naming_file_and_mode(
    tmp_path: Path, mode: int, who: str
) -> None:
    p = keyfile(tmp_path, mode, gid=12345 if os.geteuid() == 0 else None)
    with pytest.raises(KeyFileError) as e:
        load_key_file(str(p))
    msg = str(e.value)
    assert str(p) in msg and f"mode {mode:04o}" in msg and f"gives {who} access" in msg
    assert "chmod 600" in msg


@root_only
def test_chrony_layout_root_owned_0640_with_the_daemon_group_is_read(tmp_path: Path) -> None:
    p = keyfile(tmp_path, 0o640, uid=0, gid=os.getegid())
    assert list(load_key_file(str(p))) == [1]
    os.chown(p, -1, 12345)  # a group the daemon is not running as: anyone in it could read
    with pytest.raises(KeyFileError, match="mode 0640 gives group access"):
        load_key_file(str(p))
    p.chmod(0o660)  # group write is never accepted
    os.chown(p, -1, os.getegid())
    with pytest.raises(KeyFileError, match="mode 0660"):
        load_key_file(str(p))


@root_only
def test_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    p = keyfile(tmp_path, 0o600, uid=1000)
    with pytest.raises(KeyFileError, match=r"owned by uid 1000, not by the running user"):
        load_key_file(str(p))


def test_missing_file_and_directory_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot open keys file"):
        load_key_file(str(tmp_path / "nope"))
    d = tmp_path / "dir"
    d.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_key_file(str(d))


@root_only
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) not installed")
def test_unprivileged_user_reads_its_own_file_and_refuses_another_users() -> None:
    """The owner rule for a non-root daemon (uid 65534): its own 0600 file is fine, a file
    owned by another non-root user is refused even though the mode would let it read it."""
    # pytest's tmp dirs are 0700 root: uid 65534 could not reach the files
    d = Path(tempfile.mkdtemp(prefix="netclock-keys-"))
    try:
        d.chmod(0o755)
        _run_as_nobody(d)
    finally:
        shutil.rmtree(d)


def _run_as_nobody(d: Path) -> None:
    own = keyfile(d, 0o600, uid=65534, gid=65534)
    other = keyfile(d, 0o644, uid=1000)
    code = (
        "import sys; from netclock.platform.ntp_transport import load_key_file\n"
        "from netclock.ntp.auth import KeyFileError\n"
        "print(sorted(load_key_file(sys.argv[1])))\n"
        "try:\n    load_key_file(sys.argv[2])\nexcept KeyFileError as e:\n    print(e)\n"
    )
    r = subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
         sys.executable, "-c", code, str(own), str(other)],
        capture_output=True, text=True, timeout=30, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
    )
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first == "[1]"
    assert "owned by uid 1000, not by the running user (uid 65534) or root" in second


def _netclock(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netclock", *args], capture_output=True, text=True,
        timeout=timeout, cwd=REPO, check=False,
    )


def test_ntp_serve_refuses_a_world_readable_key_file(tmp_path: Path) -> None:
    p = keyfile(tmp_path, 0o644)
    r = _netclock("ntp", "serve", "--listen", "127.0.0.1:0", "--duration", "0.1",
                  "--key-file", str(p))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"{p}: keys file mode 0644" in r.stdout + r.stderr


def test_ntp_serve_rejects_a_bad_subnet_with_exit_2() -> None:
    r = _netclock("ntp", "serve", "--listen", "127.0.0.1:0", "--duration", "0.1",
                  "--allow", "10.0.0.0/33")
    assert r.returncode == 2 and "'10.0.0.0/33' is not an address or subnet" in r.stdout


def test_daemon_refuses_a_group_writable_key_file(tmp_path: Path) -> None:
    p = keyfile(tmp_path, 0o620)
    shm = tmp_path / "shm"
    cfg = tmp_path / "netclock.toml"
    cfg.write_text(
        f'[ntp]\nkeys-file = "{p}"\n[publish]\nshm-path = "{shm}/clock.shm"\n'
        "[metrics]\nenabled = false\n"
    )
    r = _netclock("run", "--config", str(cfg))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"{p}: keys file mode 0620 gives group access" in r.stderr
    assert not shm.exists()  # refused before anything was published


def test_daemon_names_a_server_key_missing_from_the_file(tmp_path: Path) -> None:
    p = keyfile(tmp_path, 0o600)
    cfg = tmp_path / "netclock.toml"
    cfg.write_text(
        f'[ntp]\nkeys-file = "{p}"\n[[ntp.server]]\naddress = "127.0.0.1"\nport = 1\nkey = 7\n'
        f'[publish]\nshm-path = "{tmp_path}/clock.shm"\n[metrics]\nenabled = false\n'
    )
    r = _netclock("run", "--config", str(cfg))
    assert r.returncode == 2 and f"key 7 is not in ntp.keys-file {p}" in r.stderr, r.stderr
