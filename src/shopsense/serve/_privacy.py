"""Pseudonymous user ids for logs: a keyed hash, stable within one home."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

__all__ = ["Pseudonymizer"]


class Pseudonymizer:
    """``u_<12 hex>`` from an HMAC of the id under a secret kept in the home (0600),
    so log readers can follow one user without learning who it is."""

    def __init__(self, secret_path: str | Path) -> None:
        path = Path(secret_path)
        if not path.exists():
            _create_secret(path)
        self._key = path.read_text().strip().encode()

    def __call__(self, user_id: str | None) -> str:
        if not user_id:
            return "-"
        return "u_" + hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()[:12]


def _create_secret(path: Path) -> None:
    """Write a new secret at ``path`` unless another process got there first; either way every
    caller then reads the same one. The server's workers start together on a new home: each
    wrote its own secret over the other's (and could read the file half written), so two
    workers named one user by two pseudonyms and never learned of each other's writes about
    them (the cross-worker cache test failed now and then). The secret is written to a private
    temp file and hard-linked into place, which fails where the file exists: no one sees it
    half written, and the first one made is the one kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".log_secret-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process's secret is in place: use it
        except OSError:  # a file system without hard links: create-exclusive, then write
            try:
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return
            with os.fdopen(out, "w") as f:
                f.write(Path(tmp).read_text())
    finally:
        os.unlink(tmp)
