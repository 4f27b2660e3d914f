"""The real all-MiniLM-L6-v2 model on torch and on ONNX Runtime (fp32 and int8), the model lookup, the
token counter, and the OpenAI-compatible client's error when nothing listens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragchat.config import Settings
from ragchat.infra.embeddings import EmbeddingError, ModelNotAvailable, Vectors
from ragchat.infra.embeddings.factory import create_embedder, create_token_counter
from ragchat.infra.embeddings.local import SentenceTransformerEmbedder
from ragchat.infra.embeddings.model_files import ModelTokenizer, resolve_model_dir
from ragchat.infra.embeddings.onnx import OnnxEmbedder
from ragchat.infra.embeddings.openai import OpenAIEmbedder

# int8 threshold, measured on 300 chunks of the Python docs: min cosine to torch 0.989, mean 0.995.
INT8_MIN_COSINE = 0.98
INT8_MEAN_COSINE = 0.99

PASSAGES = [
    "json.dumps serializes a Python object to a JSON formatted string.",
    "The quick brown fox jumps over the lazy dog.",
    "Sourdough bread rises slowly because of wild yeast and lactic acid bacteria.",
    "asyncio.TaskGroup waits for every task it created and cancels the rest if one fails.",
    "Volcanoes erupt when pressure from dissolved gases in the magma becomes too large. " * 12,
    "",
    "Ünïcödé, 日本語, emoji 🎉 and code: `for i in range(10): print(i)`",
]


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def torch_vectors(torch_embedder: SentenceTransformerEmbedder) -> Vectors:
    return torch_embedder.embed(PASSAGES, input_type="document")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def cosines(left: Vectors, right: Vectors) -> np.ndarray:
    return np.asarray((left * right).sum(axis=1))


def test_torch_vectors_are_normalised_and_meaningful(torch_vectors: Vectors) -> None:
    assert torch_vectors.shape == (len(PASSAGES), 384)
    assert torch_vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(torch_vectors[:5], axis=1), 1.0, atol=1e-5)


def test_a_query_lands_nearest_its_passage(
    torch_embedder: SentenceTransformerEmbedder, torch_vectors: Vectors
) -> None:
    query = torch_embedder.embed(["how do I turn a dict into a JSON string?"], input_type="query")
    assert int(np.argmax(torch_vectors @ query[0])) == 0


def test_onnx_fp32_matches_torch(onnx_cache: Path, torch_vectors: Vectors) -> None:
    embedder = OnnxEmbedder("all-MiniLM-L6-v2", cache_dir=onnx_cache, precision="fp32")
    vectors = embedder.embed(PASSAGES, input_type="document")
    assert vectors.shape == torch_vectors.shape
    assert cosines(vectors, torch_vectors).min() >= 0.999


def test_onnx_int8_stays_close_to_torch(onnx_cache: Path, torch_vectors: Vectors) -> None:
    embedder = OnnxEmbedder("all-MiniLM-L6-v2", cache_dir=onnx_cache, precision="int8")
    similarity = cosines(embedder.embed(PASSAGES, input_type="document"), torch_vectors)
    similarity = similarity[[index for index, text in enumerate(PASSAGES) if text]]  # "" is all padding
    assert similarity.min() >= INT8_MIN_COSINE
    assert similarity.mean() >= INT8_MEAN_COSINE


def test_onnx_export_is_cached(onnx_cache: Path) -> None:
    first = OnnxEmbedder("all-MiniLM-L6-v2", cache_dir=onnx_cache, precision="int8")
    first.load()
    exported = first.model_path.stat().st_mtime_ns
    second = OnnxEmbedder("all-MiniLM-L6-v2", cache_dir=onnx_cache, precision="int8")
    second.load()
    assert second.model_path == first.model_path
    assert second.model_path.stat().st_mtime_ns == exported
    assert second.dimension == 384


def test_batching_does_not_change_vectors(onnx_cache: Path) -> None:
    one_by_one = OnnxEmbedder("all-MiniLM-L6-v2", cache_dir=onnx_cache, batch_size=1)
    batched = OnnxEmbedder("all-MiniLM-L6-v2", cache_dir=onnx_cache, batch_size=4)
    left = one_by_one.embed(PASSAGES, input_type="document")
    right = batched.embed(PASSAGES, input_type="document")
    assert cosines(left, right).min() >= 0.9999


def test_factory_follows_the_settings(tmp_path: Path) -> None:
    default = create_embedder(Settings(_env_file=None, data_dir=tmp_path, model_cache_dir=None))  # type: ignore[call-arg]
    assert isinstance(default, OnnxEmbedder) and default.model_path.name == "model.onnx"
    assert default.model_path.is_relative_to(tmp_path / "models" / "onnx")
    shared = tmp_path / "shared-models"
    int8_settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, model_cache_dir=shared, local_embedding_runtime="onnx-int8"
    )
    onnx = create_embedder(int8_settings)
    assert isinstance(onnx, OnnxEmbedder) and onnx.model_path.name == "model.int8.onnx"
    assert onnx.model_path.is_relative_to(shared / "onnx")
    torch = create_embedder(Settings(_env_file=None, data_dir=tmp_path, local_embedding_runtime="torch"))  # type: ignore[call-arg]
    assert isinstance(torch, SentenceTransformerEmbedder)
    remote = create_embedder(Settings(_env_file=None, data_dir=tmp_path, embedding_backend="openai"))  # type: ignore[call-arg]
    assert isinstance(remote, OpenAIEmbedder)
    counter = create_token_counter(Settings(_env_file=None, data_dir=tmp_path, embedding_backend="openai"))  # type: ignore[call-arg]
    assert counter.max_tokens == 254


def test_token_offsets_exclude_special_tokens_and_map_to_text() -> None:
    tokenizer = ModelTokenizer.for_model("all-MiniLM-L6-v2")
    text = "Héllo, World! json.dumps()"
    offsets = tokenizer.token_offsets(text)
    assert [text[start:end] for start, end in offsets] == [
        "Héllo", ",", "World", "!", "j", "son", ".", "dump", "s", "(", ")",
    ]  # fmt: skip
    assert tokenizer.max_tokens == 254


def test_a_model_folder_path_is_accepted() -> None:
    folder = resolve_model_dir("all-MiniLM-L6-v2")
    assert resolve_model_dir(str(folder)) == folder


def test_a_missing_model_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        ModelNotAvailable, match=r"LOCAL_EMBEDDING_MODEL='example-org/absent-model'.*never downloads"
    ):
        resolve_model_dir("example-org/absent-model")
    with pytest.raises(ModelNotAvailable, match=r"no config\.json"):
        resolve_model_dir(str(tmp_path))


def test_unreachable_embedding_server_gives_a_clear_error() -> None:
    embedder = OpenAIEmbedder(base_url="http://127.0.0.1:9/v1", model="m", max_retries=0, connect_timeout_s=2)
    with pytest.raises(EmbeddingError, match=r"cannot reach the embedding server at http://127.0.0.1:9/v1"):
        embedder.embed(["hello"], input_type="document")
    embedder.close()
