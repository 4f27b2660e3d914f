"""Request and response bodies of the OpenAI embeddings API, as far as this server implements it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_INPUTS = 2048  # OpenAI's limit on inputs per request


class EmbeddingRequest(BaseModel):
    """`POST /v1/embeddings`. Unknown fields (e.g. `user`) are accepted and ignored, as OpenAI does."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="A text or a list of texts (token-id input is not supported)."
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    input_type: Literal["query", "document"] = Field(
        "document",
        description="ragchat extension: models with a query prompt (BGE) embed queries with it.",
    )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragchat"
    dimension: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
