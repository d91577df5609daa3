"""Which shared state a server uses: Redis when ``redis_url`` is set, else a SQLite file in
the home. Apart from :mod:`shopsense.serve._shared` (the interface), which both back-ends
import, so the interface never imports its implementations."""

from __future__ import annotations

from pathlib import Path

from shopsense.config import Settings
from shopsense.serve._shared import SharedState

__all__ = ["open_shared_state", "state_path"]


def state_path(settings: Settings) -> Path:
    return Path(settings.home) / "serve_state.sqlite3"


def open_shared_state(settings: Settings) -> SharedState:
    """Redis when ``settings.redis_url`` is set, else the SQLite file in the home."""
    if settings.redis_url:
        from shopsense.serve._shared_redis import RedisSharedState

        return RedisSharedState(settings.redis_url, prefix=settings.redis_prefix)
    from shopsense.serve._shared_sqlite import SQLiteSharedState

    return SQLiteSharedState(state_path(settings))
