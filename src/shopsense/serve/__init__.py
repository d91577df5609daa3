"""HTTP API, storefront and dashboard over one :class:`shopsense.engine.Engine`.

``create_app(settings)`` builds the FastAPI app; ``shopsense serve`` runs it with
uvicorn. Needs the ``api`` extra.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KeyStore", "create_app"]


def __getattr__(name: str) -> Any:  # fastapi loads only when the API is used
    if name == "create_app":
        from shopsense.serve.main import create_app

        return create_app
    if name == "KeyStore":
        from shopsense.serve._auth import KeyStore

        return KeyStore
    raise AttributeError(name)
