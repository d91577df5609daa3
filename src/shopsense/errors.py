"""One exception hierarchy for shopsense.

Bad-input errors also subclass :class:`ValueError` and name the parameter, the
value and what is allowed. The HTTP layer maps each class to one status code.
"""

from __future__ import annotations

from typing import Any


class ShopsenseError(Exception):
    """Base class of every error raised by shopsense."""


class ValidationError(ShopsenseError, ValueError):
    """Input that does not fit the schema or a parameter's bounds (HTTP 422)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(ShopsenseError, KeyError):
    """An id that the store does not hold (HTTP 404)."""

    def __init__(self, kind: str, id_: str) -> None:
        super().__init__(f"Unknown {kind} id {id_!r}.")
        self.kind = kind
        self.id = id_

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class NotFittedError(ShopsenseError, RuntimeError):
    """A model or index used before it was built (HTTP 409)."""


class MissingDependencyError(ShopsenseError, ImportError):
    """An optional extra is not installed; the message gives the pip command."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"This feature needs {package!r}. Install it with: pip install 'shopsense[{extra}]'"
        )


class AuthError(ShopsenseError, PermissionError):
    """Missing or insufficient API key (HTTP 401/403)."""


def check_param(name: str, value: Any, ok: bool, allowed: str, owner: str = "") -> None:
    """Raise the one standard bounds error when ``ok`` is false.

    >>> check_param("k", 0, 0 > 0, "an int >= 1", "search")
    Traceback (most recent call last):
    ...
    shopsense.errors.ValidationError: The 'k' parameter of search must be an int >= 1. Got 0 instead.
    """
    if not ok:
        where = f" of {owner}" if owner else ""
        raise ValidationError(
            f"The {name!r} parameter{where} must be {allowed}. Got {value!r} instead.", field=name
        )


def require(module: str, extra: str) -> Any:
    """Import an optional dependency or fail with the pip hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(module, extra) from exc
