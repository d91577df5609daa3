"""HTTP API, storefront and dashboard over one :class:`shopsense.engine.Engine`.

``create_app(settings)`` builds the FastAPI app; ``shopsense serve`` runs it with
uvicorn. Needs the ``api`` extra.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Change", "ChangeFeed", "EventWriter", "FeedGap", "KeyStore", "PrecomputedAnswers", "Pseudonymizer",
           "RateLimiter", "RedisSharedState", "ResponseCache", "SQLiteSharedState", "SharedQueryVectors", "SharedState", "WriterClosed",
           "balance_connections", "compute_threads", "create_app", "get_engine", "open_shared_state", "precompute_answers", "render_answer", "warm_up"]

# name -> module that defines it; loaded on first use, so fastapi and redis load only when needed
_LAZY = {"create_app": "main", "ChangeFeed": "_sync", "KeyStore": "_auth", "get_engine": "_state", "Change": "_shared",
         "FeedGap": "_shared", "SharedState": "_shared", "SharedQueryVectors": "_shared", "SQLiteSharedState": "_shared_sqlite",
         "RedisSharedState": "_shared_redis", "open_shared_state": "_open_shared", "RateLimiter": "_limits", "ResponseCache": "_cache",
         "EventWriter": "_writer", "WriterClosed": "_writer", "warm_up": "_warm", "Pseudonymizer": "_privacy",
         "PrecomputedAnswers": "_answers", "precompute_answers": "_answers", "render_answer": "_state",
         "compute_threads": "_state",
         "balance_connections": "_balance"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"shopsense.serve.{_LAZY[name]}"), name)
    raise AttributeError(name)
