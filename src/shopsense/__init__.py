"""shopsense: search and recommendations for online shops, CPU-first.

``import shopsense`` is light: torch, sentence-transformers and the other heavy
back-ends load on first use.
"""

from shopsense.catalog import Catalog, Event, EventType, IngestReport, Product
from shopsense.config import Settings
from shopsense.engine import Engine
from shopsense.errors import (
    AuthError,
    MissingDependencyError,
    NotFittedError,
    NotFoundError,
    ShopsenseError,
    ValidationError,
)
from shopsense.results import Hit, Ranked, ResultList

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "Catalog",
    "Engine",
    "Event",
    "EventType",
    "Hit",
    "IngestReport",
    "MissingDependencyError",
    "NotFittedError",
    "NotFoundError",
    "Product",
    "Ranked",
    "ResultList",
    "Settings",
    "ShopsenseError",
    "ValidationError",
    "__version__",
]
