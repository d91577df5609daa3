"""Throwaway servers for tests, started from the packages that
``scripts/install-services.sh`` installs.

Each server lives in its own temporary folder (data, unix socket, log), listens on a
free port of 127.0.0.1, and is stopped and deleted when its context manager exits, even
when the tests inside failed. Nothing here is a pytest fixture: a ``conftest.py`` wraps
the context manager in a session-scoped fixture and turns :class:`ServiceUnavailable`
into ``pytest.skip``, so the same helper serves any test folder (PostgreSQL today, Redis
next)::

    @pytest.fixture(scope="session")
    def postgres_url():
        with services.or_skip(services.postgres_server()) as url:
            yield url

PostgreSQL refuses to run as root, so under root the server commands run as the
``postgres`` user (Debian's package creates it) and the temporary folder is handed to it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ServiceUnavailable", "free_port", "or_skip", "postgres_server"]

#: a server already running elsewhere (CI service container): used instead of starting one
POSTGRES_URL_ENV = "SHOPSENSE_TEST_POSTGRES_URL"


class ServiceUnavailable(RuntimeError):
    """The server's binaries are not installed here; the reason says what to run."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def or_skip(server: contextlib.AbstractContextManager[str]) -> Iterator[str]:
    """Enter ``server``; skip the requesting tests (not fail them) when it is not installed."""
    import pytest

    try:
        url = server.__enter__()
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


def _pg_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                            reverse=True):
        if (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")  # Homebrew, Nix, other distributions put it on PATH
    return Path(found).parent if found else None


def _as_server_user(argv: list[str]) -> tuple[list[str], str | None]:
    """The command line that runs ``argv`` as a user PostgreSQL accepts, and that user's
    name when it has to be switched to (root only)."""
    if os.geteuid() != 0:
        return argv, None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServiceUnavailable(
            "PostgreSQL refuses to run as root and there is no 'postgres' user; "
            "run scripts/install-services.sh (it installs Debian's postgresql package)"
        ) from exc
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *argv], "postgres"
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(map(_sh_quote, argv))], "postgres"


def _sh_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def _run(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    cmd, _ = _as_server_user(argv)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throwaway PostgreSQL and yield a ``postgresql://`` URL of its ``postgres``
    database (superuser, trust authentication over the unix socket).

    Raises :class:`ServiceUnavailable` when the server binaries are not installed.
    ``SHOPSENSE_TEST_POSTGRES_URL`` names a running server to use instead.
    """
    if os.environ.get(POSTGRES_URL_ENV):
        yield os.environ[POSTGRES_URL_ENV]
        return
    bindir = _pg_bindir()
    if bindir is None:
        raise ServiceUnavailable(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin or pg_ctl on PATH); "
            "run scripts/install-services.sh, or set SHOPSENSE_TEST_POSTGRES_URL"
        )
    _, user = _as_server_user([])
    root = Path(tempfile.mkdtemp(prefix="shopsense-pg-"))
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    if user is not None:
        shutil.chown(root, user)
        shutil.chown(sock, user)
    port = free_port()
    started = False
    try:
        init = _run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                     "-E", "UTF8", "--locale=C", "--no-sync"], root, timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        for _attempt in range(3):
            # A test server: durability against a crash of the *server* is not under test
            # (a killed client is, and needs none of these), so skip every fsync.
            opts = (f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sock} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    "-c shared_buffers=32MB -c max_connections=40 -c log_min_messages=warning")
            start = _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                          "-o", opts, "start"], root, timeout=90)
            if start.returncode == 0:
                started = True
                break
            port = free_port()  # the free port may have been taken meanwhile: try another
        if not started:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{tail}")
        yield f"postgresql://postgres@/postgres?host={sock}&port={port}"
    finally:
        if started:
            stop = _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"],
                        root, timeout=60)
            if stop.returncode != 0:
                _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                     root, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
