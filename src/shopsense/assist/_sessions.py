"""Assistant sessions in a SQLite file under the home, with expiry.

A session holds only the dialogue state (query, constraints, shown ids) and, when the
caller passed one, the user id it belongs to, so :func:`delete_user_sessions` can erase
a user's conversations with the rest of their data. Expired sessions are never
returned and are purged as new ones are written.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from shopsense.assist._state import DialogueState
from shopsense.errors import ValidationError

__all__ = ["SessionStore", "check_session_id", "delete_user_sessions"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT,
    state TEXT NOT NULL,
    updated REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions(expires);
"""

#: a day: a shopper coming back tomorrow starts a new conversation
DEFAULT_TTL_S = 86_400.0


def check_session_id(session_id: object) -> str:
    """A session id is 1-128 printable characters."""
    if not (isinstance(session_id, str) and 1 <= len(session_id) <= 128 and session_id.isprintable()
            and session_id.strip()):
        raise ValidationError(f"The 'session_id' parameter must be 1 to 128 printable characters. "
                              f"Got {session_id!r} instead.", field="session_id")
    return session_id


class SessionStore:
    """Dialogue states by session id in ``path`` (created 0600: it may hold user ids).

    Parameters
    ----------
    path: the SQLite file (``Home.assistant_sessions``).
    ttl_s: seconds a session lives after its last turn.
    clock: seconds since 1970 (tests pass a fake one).
    """

    def __init__(self, path: str | Path, ttl_s: float = DEFAULT_TTL_S, clock: object = None) -> None:
        if not (isinstance(ttl_s, (int, float)) and ttl_s > 0):
            raise ValidationError(f"The 'ttl_s' parameter of SessionStore must be a positive number. "
                                  f"Got {ttl_s!r} instead.", field="ttl_s")
        self.path = Path(path)
        self.ttl_s = float(ttl_s)
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def get(self, session_id: str) -> DialogueState | None:
        """The live state of ``session_id``; ``None`` when unknown or expired."""
        check_session_id(session_id)
        with self._lock:
            row = self._db().execute("SELECT state, expires FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None or row[1] <= self.now():
            return None
        return DialogueState.from_json(row[0])

    def user_of(self, session_id: str) -> str | None:
        with self._lock:
            row = self._db().execute("SELECT user_id FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else row[0]

    def put(self, session_id: str, state: DialogueState, user_id: str | None = None) -> None:
        """Store ``state``; the session's user id is kept once given (a later anonymous
        turn does not unlink it from its user)."""
        check_session_id(session_id)
        now = self.now()
        with self._lock:
            db = self._db()
            db.execute(
                "INSERT INTO sessions (id, user_id, state, updated, expires) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET user_id = COALESCE(excluded.user_id, sessions.user_id), "
                "state = excluded.state, updated = excluded.updated, expires = excluded.expires",
                (session_id, user_id, state.to_json(), now, now + self.ttl_s))
            db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))

    def delete(self, session_id: str) -> int:
        with self._lock:
            return self._db().execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount

    def delete_user(self, user_id: str) -> int:
        """Erase every session of ``user_id``; returns how many."""
        with self._lock:
            return self._db().execute("DELETE FROM sessions WHERE user_id = ?", (user_id,)).rowcount

    def purge_expired(self) -> int:
        with self._lock:
            return self._db().execute("DELETE FROM sessions WHERE expires <= ?", (self.now(),)).rowcount

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM sessions WHERE expires > ?",
                                          (self.now(),)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def delete_user_sessions(path: str | Path, user_id: str) -> int:
    """Erase ``user_id``'s sessions from the file at ``path``; 0 when there is no file
    (nothing is created)."""
    if not Path(path).exists():
        return 0
    store = SessionStore(path)
    try:
        return store.delete_user(user_id)
    finally:
        store.close()
