"""Where the public datasets and the bundled demo files live."""

from __future__ import annotations

import os
from pathlib import Path

from shopsense.errors import ShopsenseError

__all__ = ["DatasetNotFoundError", "datasets_root", "demo_dir", "demo_paths", "repo_root"]

_ENV_ROOT = "SHOPSENSE_DATASETS"
_ENV_DEMO = "SHOPSENSE_DEMO_DATA"

#: the bundled demo files, by role (see data/demo/ATTRIBUTION.md)
_DEMO_FILES = {
    "office_products": "office_products.jsonl",
    "icecat_products": "icecat_products.jsonl",
    "office_events": "office_events.parquet",
}


class DatasetNotFoundError(ShopsenseError, FileNotFoundError):
    """A dataset folder or file is not where it should be."""


def repo_root() -> Path:
    """The checkout this package runs from (``src/shopsense/datasets`` -> three levels up).

    Valid for a repository checkout and for an editable install, which both import the
    package from ``<repo>/src``.
    """
    return Path(__file__).resolve().parents[3]


def datasets_root(must_exist: bool = True) -> Path:
    """The folder of public datasets: ``$SHOPSENSE_DATASETS``, else ``<repo>/../shared/datasets``.

    Raises :class:`DatasetNotFoundError` naming the path when it is absent.
    """
    env = os.environ.get(_ENV_ROOT)
    root = Path(env).expanduser() if env else repo_root().parent / "shared" / "datasets"
    if must_exist and not root.is_dir():
        how = f"${_ENV_ROOT}" if env else f"<repo>/../shared/datasets (set ${_ENV_ROOT} to override)"
        raise DatasetNotFoundError(f"The datasets folder {str(root)!r} does not exist; looked at {how}.")
    return root


def dataset_file(*parts: str, root: str | Path | None = None) -> Path:
    """A file under ``root`` (default :func:`datasets_root`), with an error naming it when absent."""
    path = (Path(root) if root is not None else datasets_root()).joinpath(*parts)
    if not path.exists():
        raise DatasetNotFoundError(f"Dataset file {str(path)!r} does not exist.")
    return path


def demo_dir() -> Path:
    """The bundled demo folder: ``$SHOPSENSE_DEMO_DATA``, else ``<repo>/data/demo``."""
    env = os.environ.get(_ENV_DEMO)
    path = Path(env).expanduser() if env else repo_root() / "data" / "demo"
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"The demo data folder {str(path)!r} does not exist (it ships with the repository "
            f"checkout; set ${_ENV_DEMO} to point elsewhere)."
        )
    return path


def demo_paths() -> dict[str, list[Path]]:
    """The bundled demo files, ready for ``Engine.ingest_products`` / ``ingest_events``.

    ``{"products": [office_products.jsonl, icecat_products.jsonl], "events":
    [office_events.parquet]}``: ingest every products file before the events.

    Example
    -------
    >>> from shopsense.datasets import demo_paths
    >>> [p.name for p in demo_paths()["products"]]          # doctest: +SKIP
    ['office_products.jsonl', 'icecat_products.jsonl']
    """
    folder = demo_dir()
    out: dict[str, list[Path]] = {"products": [], "events": []}
    for key, name in _DEMO_FILES.items():
        path = folder / name
        if not path.exists():
            raise DatasetNotFoundError(f"Demo file {str(path)!r} is missing.")
        out["events" if key.endswith("_events") else "products"].append(path)
    return out
