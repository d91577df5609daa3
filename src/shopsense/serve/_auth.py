"""API keys with two roles, stored hashed in the engine home.

A key reads ``ss_<id>_<secret>``. Only the id, the role and a SHA-256 digest of the
secret are written to disk: the secret is 32 random bytes, so a fast hash is enough
(slow password hashes exist for low-entropy secrets chosen by people).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shopsense.errors import AuthError, check_param

__all__ = ["ROLES", "ApiKey", "KeyStore"]

Role = Literal["read", "write"]
#: ``write`` is the admin role: it may also read
ROLES: tuple[str, ...] = ("read", "write")


@dataclass(frozen=True)
class ApiKey:
    id: str
    role: str
    name: str
    created_at: float


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _signature(st: os.stat_result) -> tuple[int, int, int]:
    """What tells one version of the keys file from the next: its modification time, and
    its inode (each write replaces the file) and size, since the time alone may not (coarse
    file timestamps on some kernels and file systems: two writes a few ms apart)."""
    return st.st_mtime_ns, st.st_ino, st.st_size


class KeyStore:
    """The API keys of one engine home, in a JSON file (mode 0600).

    Another process (the CLI, another worker) may change the file at any time. Creating,
    revoking and listing read it first; :meth:`verify` looks at it again at most every
    ``recheck_s`` seconds, and at once for a key id it does not know, so a key created a
    moment ago works on its first request and a revoked one stops within ``recheck_s``.
    """

    #: how long :meth:`verify` trusts the keys it read. Not 0: the file's stat on every
    #: request released the GIL to the worker's other threads (the event writer, the change
    #: feed) and the request waited to get it back (py-spy: 6% of a worker's event loop on
    #: Beauty event posts, 2 workers, 32 connections; 2,742 -> 2,942 posts/s without it)
    RECHECK_S = 0.05

    def __init__(self, path: str | Path, recheck_s: float = RECHECK_S) -> None:
        self.path = Path(path)
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._records: dict[str, dict] = {}
        self._seen: tuple[int, int, int] | None = None  # the file as last read: _signature()
        self._checked = 0.0  # time.monotonic() of the last look at the file
        self._reload()

    def _reload(self, max_age_s: float = 0.0) -> None:
        """Read the file again if it changed; with ``max_age_s``, only if it was last
        looked at more than that long ago."""
        now = time.monotonic()
        if max_age_s > 0 and now - self._checked < max_age_s:
            return
        self._checked = now
        try:
            seen = _signature(self.path.stat())
        except FileNotFoundError:
            self._records, self._seen = {}, None
            return
        if seen != self._seen:
            data = json.loads(self.path.read_text() or "{}")
            self._records = {r["id"]: r for r in data.get("keys", [])}
            self._seen = seen

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": list(self._records.values())}, indent=1))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)
        self._seen = _signature(self.path.stat())

    def create(self, role: str, name: str = "") -> str:
        """Create a key and return its plaintext (shown once, never stored)."""
        check_param("role", role, role in ROLES, f"one of {list(ROLES)}", "KeyStore.create")
        kid = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        with self._lock:
            self._reload()
            self._records[kid] = {"id": kid, "role": role, "name": name, "hash": _digest(secret),
                                  "created_at": time.time()}
            self._write()
        return f"ss_{kid}_{secret}"

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            self._reload()
            found = self._records.pop(key_id, None) is not None
            if found:
                self._write()
            return found

    def revoke_named(self, name: str) -> int:
        with self._lock:
            self._reload()
            gone = [k for k, r in self._records.items() if r.get("name") == name]
            for k in gone:
                del self._records[k]
            if gone:
                self._write()
            return len(gone)

    def list(self) -> list[ApiKey]:
        with self._lock:
            self._reload()
            return [ApiKey(r["id"], r["role"], r.get("name", ""), r["created_at"])
                    for r in self._records.values()]

    def verify(self, token: str) -> ApiKey:
        """The key a token belongs to; :class:`AuthError` when it is not valid."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "ss":
            raise AuthError("Malformed API key: expected 'ss_<id>_<secret>'.")
        with self._lock:
            self._reload(self.recheck_s)
            rec = self._records.get(parts[1])
            if rec is None:  # created a moment ago by another process: look at the file now
                self._reload()
                rec = self._records.get(parts[1])
        if rec is None or not hmac.compare_digest(rec["hash"], _digest(parts[2])):
            raise AuthError("Unknown or revoked API key.")
        return ApiKey(rec["id"], rec["role"], rec.get("name", ""), rec["created_at"])
