"""Every path under an engine home, named once.

The engine, its services, the CLI and the HTTP app ask a :class:`Home` for a path
instead of joining strings, so the layout lives in one place::

    <home>/
      shopsense.toml          settings (optional)
      store.sqlite3           the embedded store (SQLite back-end)
      index/                  search indexes + manifest.json (SearchService)
      models/<version>/       recommendation models + manifest.json; models/CURRENT points at one
      models/encoder/<v>/     fine-tuned encoders; models/encoder/current.json names the active one
      models/onnx/<slug>/     ONNX exports of a configured encoder
      embeddings/             encoder cache, by model and text hash
      rules.json              business rules (pin / boost / bury / exclude)
      synonyms.txt            the shop's own synonyms (else the packaged default)
      api_keys.json           hashed API keys
      rejects/                ingest reports of bad rows
      logs/                   server logs (no personal data)
      policies/               the shop's policy files (markdown/text) the assistant quotes
      assistant/              assistant sessions (sessions.sqlite3) and the policy passage index
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["Home", "packaged_synonyms", "replaced_folder"]


def packaged_synonyms() -> Path:
    """The default synonyms file shipped inside the package (present after ``pip install``)."""
    return Path(str(resources.files("shopsense") / "data" / "synonyms.txt"))


@dataclass(frozen=True)
class Home:
    """The engine home directory and the name of everything under it."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def __fspath__(self) -> str:
        return str(self.root)

    def __truediv__(self, other: str) -> Path:
        return self.root / other

    def ensure(self) -> Home:
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    # -- files -------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.root / "shopsense.toml"

    @property
    def sqlite(self) -> Path:
        return self.root / "store.sqlite3"

    @property
    def rules(self) -> Path:
        return self.root / "rules.json"

    @property
    def api_keys(self) -> Path:
        return self.root / "api_keys.json"

    @property
    def synonyms(self) -> Path:
        """The shop's synonyms file when it has one, else the packaged default."""
        own = self.root / "synonyms.txt"
        return own if own.exists() else packaged_synonyms()

    # -- folders -----------------------------------------------------------------------
    @property
    def index(self) -> Path:
        return self.root / "index"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def models_current(self) -> Path:
        return self.models / "CURRENT"

    def model_version(self, version: str) -> Path:
        return self.models / version

    @property
    def encoders(self) -> Path:
        """Fine-tuned encoder versions (``<version>/`` folders and ``current.json``)."""
        return self.models / "encoder"

    @property
    def encoder_pointer(self) -> Path:
        """``{"version": ...}`` of the active tuned encoder (absent: the configured model)."""
        return self.encoders / "current.json"

    @property
    def onnx(self) -> Path:
        """ONNX exports of configured (not tuned) encoders, one folder per model slug."""
        return self.models / "onnx"

    @property
    def embeddings(self) -> Path:
        return self.root / "embeddings"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects"

    def rejects_file(self, kind: str, source: Path) -> Path:
        """A new rejects report for one ingest of ``source``: never the name of another one.

        Two ingests started in the same second (``events.csv`` and ``events.jsonl``, or the
        same file twice, in two processes) each get their own file: the name holds the time,
        the kind, the source's whole file name and a random suffix.
        """
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self.rejects / f"{stamp}-{kind}-{Path(source).name}-{secrets.token_hex(6)}.jsonl"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def policies(self) -> Path:
        """The shop's policy and FAQ files (``.md``, ``.txt``) the assistant quotes."""
        return self.root / "policies"

    @property
    def assistant_sessions(self) -> Path:
        """Assistant dialogue states, with expiry (SQLite)."""
        return self.root / "assistant" / "sessions.sqlite3"

    @property
    def policy_index(self) -> Path:
        """The passages of :attr:`policies`, indexed (rebuilt when a file changes)."""
        return self.root / "assistant" / "policy_index"

    def manifests(self) -> list[Path]:
        """``manifest.json`` of everything built directly under the home (index, models...)."""
        return sorted(self.root.glob("*/manifest.json"))


@contextmanager
def replaced_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` to write into; when the block ends it takes the place
    of ``path`` (a rename), so a crash never leaves half a folder under that name; when the
    block raises it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
