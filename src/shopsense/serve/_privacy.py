"""Pseudonymous user ids for logs: a keyed hash, stable within one home."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["Pseudonymizer"]


class Pseudonymizer:
    """``u_<12 hex>`` from an HMAC of the id under a secret kept in the home (0600),
    so log readers can follow one user without learning who it is."""

    def __init__(self, secret_path: str | Path) -> None:
        path = Path(secret_path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            os.chmod(path, 0o600)
        self._key = path.read_text().strip().encode()

    def __call__(self, user_id: str | None) -> str:
        if not user_id:
            return "-"
        return "u_" + hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()[:12]
