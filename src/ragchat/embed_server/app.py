"""The embedding server's ASGI app: OpenAI-compatible `POST /v1/embeddings`, `GET /v1/models`, `/health`,
`/metrics`. Each served model has a `MicroBatcher`, so concurrent requests share one model call.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, Response

from ragchat import __version__
from ragchat.api import errors
from ragchat.api.errors import ApiError
from ragchat.config import EmbeddingRuntime, Settings
from ragchat.embed_server.protocol import MAX_INPUTS, EmbeddingRequest, ModelCard, ModelList
from ragchat.infra.embeddings import Embedder, EmbeddingError, InputType, ModelNotAvailable
from ragchat.infra.embeddings.batching import BatchObserver, Encoded, MicroBatcher
from ragchat.infra.embeddings.factory import create_embedder
from ragchat.infra.embeddings.model_files import ModelTokenizer, resolve_model_dir
from ragchat.observability import CONTENT_TYPE, EmbedServerMetrics

BGE_SMALL = "BAAI/bge-small-en-v1.5"


@dataclass
class ServedModel:
    """One model the server answers for: its embedder, its tokenizer (for `usage`) and its batcher."""

    name: str
    embedder: Embedder
    tokenizer: ModelTokenizer
    created: int
    batcher: MicroBatcher | None = None

    def encode(self, texts: list[str], input_type: InputType) -> Encoded:
        """Blocking: one model call for a whole batch (runs on a worker thread)."""
        vectors = self.embedder.embed(texts, input_type=input_type)
        return Encoded(vectors=vectors, token_counts=[self.tokenizer.count(text) for text in texts])

    def matches(self, requested: str) -> bool:
        """`all-MiniLM-L6-v2` also answers to `sentence-transformers/all-MiniLM-L6-v2`, and vice versa."""
        return requested == self.name or requested.rsplit("/", 1)[-1] == self.name.rsplit("/", 1)[-1]


def default_model_names(settings: Settings) -> list[str]:
    """LOCAL_EMBEDDING_MODEL (all-MiniLM-L6-v2 by default), plus BGE-small when its weights are here."""
    names = [settings.local_embedding_model]
    if BGE_SMALL not in names:
        try:
            resolve_model_dir(BGE_SMALL)
        except ModelNotAvailable:
            return names
        names.append(BGE_SMALL)
    return names


def prepare_models(settings: Settings, names: Sequence[str], runtime: EmbeddingRuntime) -> list[ServedModel]:
    """Embedders for `names` on `runtime` (weights load at server start). Raises `ModelNotAvailable`."""
    models = []
    for name in names:
        model_settings = settings.model_copy(
            update={
                "embedding_backend": "local",
                "local_embedding_model": name,
                "local_embedding_runtime": runtime,
            }
        )
        models.append(
            ServedModel(
                name=name,
                embedder=create_embedder(model_settings),
                tokenizer=ModelTokenizer.for_model(name),
                created=int(time.time()),
            )
        )
    return models


def create_embed_app(
    models: Sequence[ServedModel], *, max_batch_texts: int = 256, max_wait_s: float = 0.002
) -> FastAPI:
    """The server for `models`; its lifespan loads each model (with a warm-up) and starts its batcher."""
    if not models:
        raise ValueError("the embedding server needs at least one model")
    metrics = EmbedServerMetrics([model.name for model in models], version=__version__)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for model in models:
            model.batcher = MicroBatcher(
                model.encode,
                max_batch_texts=max_batch_texts,
                max_wait_s=max_wait_s,
                on_batch=_batch_observer(metrics, model.name),
            )
            model.batcher.start()
            await model.batcher.submit(["warm-up"], "query")  # loads the weights on the model's thread
        try:
            yield
        finally:
            for model in models:
                if model.batcher is not None:
                    await model.batcher.aclose()

    app = FastAPI(
        title="ragchat embed-server",
        version=__version__,
        summary="OpenAI-compatible embeddings for ragchat (POST /v1/embeddings).",
        lifespan=lifespan,
    )
    errors.install(app)

    def find(requested: str) -> ServedModel:
        for model in models:
            if model.matches(requested):
                return model
        served = ", ".join(model.name for model in models)
        raise ApiError(404, "model_not_found", f"model {requested!r} is not served here (served: {served})")

    @app.get("/health")
    async def health() -> dict[str, object]:
        """Liveness: the models are loaded and batching."""
        return {"status": "ok", "version": __version__, "models": [model.name for model in models]}

    @app.get("/v1/models")
    async def list_models() -> ModelList:
        """The served models, OpenAI-style, each with its vector `dimension`."""
        return ModelList(
            data=[
                ModelCard(id=model.name, created=model.created, dimension=model.embedder.dimension)
                for model in models
            ]
        )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Request, batch and latency metrics for Prometheus."""
        return Response(content=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest) -> Response:
        """Embed `input` (a text or a list of texts) with `model`; vectors are L2-normalised."""
        started = time.perf_counter()
        texts: list[str] = []
        outcome = "server_error"
        try:
            model = find(body.model)
            texts = _texts_of(body.input)
            dimension = model.embedder.dimension
            if body.dimensions is not None and body.dimensions != dimension:
                raise ApiError(
                    400,
                    "unsupported_dimensions",
                    f"{model.name} makes {dimension}-dimensional vectors; `dimensions` cannot change that",
                )
            assert model.batcher is not None
            try:
                encoded = await model.batcher.submit(texts, body.input_type)
            except EmbeddingError as exc:
                raise ApiError(500, "embedding_failed", str(exc)) from None
            payload = _response_body(model.name, encoded, body.encoding_format)
            outcome = "ok"
            return Response(content=payload, media_type="application/json")
        except ApiError as exc:
            outcome = "client_error" if exc.status_code < 500 else "server_error"
            raise
        finally:
            metrics.request(
                model=body.model, outcome=outcome, seconds=time.perf_counter() - started, inputs=len(texts)
            )

    return app


def _batch_observer(metrics: EmbedServerMetrics, model: str) -> BatchObserver:
    def observe(texts: int, seconds: float) -> None:
        metrics.batch(model=model, texts=texts, seconds=seconds)

    return observe


def _texts_of(value: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not value:
        raise ApiError(400, "empty_input", "`input` must hold at least one text")
    if not all(isinstance(item, str) for item in value):
        raise ApiError(400, "unsupported_input", "token-id input is not supported: send the text itself")
    if len(value) > MAX_INPUTS:
        raise ApiError(400, "too_many_inputs", f"at most {MAX_INPUTS} inputs per request (got {len(value)})")
    return [str(item) for item in value]


def _response_body(model: str, encoded: Encoded, encoding_format: str) -> bytes:
    vectors = encoded.vectors
    if encoding_format == "base64":
        little_endian = vectors.astype("<f4", copy=False)
        embeddings: list[object] = [base64.b64encode(row.tobytes()).decode("ascii") for row in little_endian]
    else:
        embeddings = vectors.astype(np.float64).tolist()  # float64 prints float32 values exactly
    tokens = sum(encoded.token_counts)
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": embedding}
            for index, embedding in enumerate(embeddings)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json.dumps(body, separators=(",", ":")).encode()
