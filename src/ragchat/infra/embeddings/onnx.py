"""The local embedding model on ONNX Runtime: fp32, or int8 (per-channel, MatMul weights only).

The first use exports the model's transformer with `torch.onnx.export` (TorchScript exporter) into
`<RAGCHAT_MODEL_CACHE_DIR or RAGCHAT_DATA_DIR/models>/onnx/<model>-<fingerprint>/` and, for int8,
quantizes that export; later runs load the cached files and need neither torch nor transformers.
Encoding = the model's fast tokenizer, ONNX Runtime, the model's pooling (mean or CLS) and L2
normalisation, mirroring sentence-transformers.

int8 choice (docs/design-choices.md, "Embedding runtimes"): default `quantize_dynamic` moves the vectors
too far from torch's; per-channel weights on MatMul only keeps them close and still runs faster than fp32.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ragchat.infra.embeddings import EmbeddingError, InputType, ModelNotAvailable, Vectors
from ragchat.infra.embeddings.model_files import ModelFiles, ModelTokenizer, resolve_model_dir

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]
_OPSET = 17


class OnnxEmbedder:
    """ONNX Runtime on CPU. Export/quantization happen on first use (or `load()`), then are cached."""

    def __init__(
        self,
        model: str,
        *,
        cache_dir: Path,
        precision: Precision = "fp32",
        batch_size: int = 32,
        threads: int | None = None,
    ) -> None:
        """`cache_dir` holds exported models (`Settings.models_dir / "onnx"`); `threads`: None = ORT's."""
        self.model_name = model
        self._files = ModelFiles.read(resolve_model_dir(model))
        self._pooling = _pooling_mode(self._files.folder)
        self._tokenizer = ModelTokenizer(self._files.folder, self._files.max_seq_length)
        self.max_tokens = self._tokenizer.max_tokens
        self._precision: Precision = precision
        self._batch_size = batch_size
        self._threads = threads
        self._export_dir = cache_dir / f"{_slug(model)}-{_fingerprint(self._files.folder)}"
        self._session: Any = None
        self._encoder: Any = None
        self._input_names: tuple[str, ...] = ()
        self._dimension = 0
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        self._loaded()
        return self._dimension

    @property
    def model_path(self) -> Path:
        """The .onnx file this embedder runs (exported on first use)."""
        name = "model.onnx" if self._precision == "fp32" else "model.int8.onnx"
        return self._export_dir / name

    def load(self) -> None:
        """Export (first time only) and open the ONNX model now instead of on the first `embed`."""
        self._loaded()

    def close(self) -> None:
        """Nothing to release: the loaded model is memory that goes with this object."""

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of each model token in `text`, special tokens excluded."""
        return self._tokenizer.token_offsets(text)

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> Vectors:
        """L2-normalised float32 vectors, shape (len(texts), dimension); inputs over the limit are cut."""
        session = self._loaded()
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        prompt = self._files.prompts.get(input_type, "")
        encodings = self._encoder.encode_batch([prompt + text for text in texts])
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))  # less padding
        result = np.empty((len(texts), self._dimension), dtype=np.float32)
        for first in range(0, len(order), self._batch_size):
            batch = order[first : first + self._batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                token_ids = encodings[index].ids
                ids[row, : len(token_ids)] = token_ids
                mask[row, : len(token_ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            (hidden,) = session.run(["last_hidden_state"], {k: feeds[k] for k in self._input_names})
            result[batch] = self._pool(hidden, mask)
        return result

    def _pool(self, hidden: Any, mask: Any) -> Any:
        if self._pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def _loaded(self) -> Any:
        with self._lock:
            if self._session is None:
                self._open()
            return self._session

    def _open(self) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        if not self.model_path.is_file():
            fp32_path = self._export_dir / "model.onnx"
            if not fp32_path.is_file():
                logger.warning("exporting %s to ONNX, once (~10 s): %s", self.model_name, fp32_path)
                export_onnx(self._files.folder, fp32_path)
            if self._precision == "int8":
                logger.warning("quantizing %s to int8, once: %s", self.model_name, self.model_path)
                quantize_int8(fp32_path, self.model_path)

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self._threads:
            options.intra_op_num_threads = self._threads
        # ORT's worker threads spin after each run by default, taking the cores the vector scan, the keyword
        # search and the LLM server need between one query and the next.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )
        encoder = Tokenizer.from_file(str(self._files.folder / "tokenizer.json"))
        encoder.no_padding()
        encoder.enable_truncation(max_length=self._files.max_seq_length)
        self._input_names = tuple(node.name for node in session.get_inputs())
        self._dimension = int(session.get_outputs()[0].shape[-1])
        self._encoder = encoder
        self._session = session


def export_onnx(model_dir: Path, target: Path) -> None:
    """Export the Hugging Face transformer in `model_dir` to `target` (written atomically)."""
    try:
        import torch
        from transformers import AutoModel
    except ImportError:
        raise EmbeddingError(
            "exporting the embedding model to ONNX needs torch and transformers (installed with ragchat); "
            "or set LOCAL_EMBEDDING_RUNTIME=torch"
        ) from None

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    model.eval()
    accepted = inspect.signature(model.forward).parameters
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in accepted]

    class _LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    sample = torch.ones((2, 16), dtype=torch.long)
    samples = tuple(torch.zeros_like(sample) if name == "token_type_ids" else sample for name in names)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python control flow are expected
            torch.onnx.export(
                _LastHiddenState(),
                samples,
                str(partial),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={
                    **{name: {0: "batch", 1: "sequence"} for name in names},
                    "last_hidden_state": {0: "batch", 1: "sequence"},
                },
                opset_version=_OPSET,
                dynamo=False,
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of MatMul weights, per channel (written atomically)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        quantize_dynamic(
            source,
            partial,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
        )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _pooling_mode(folder: Path) -> str:
    config_path = folder / "1_Pooling" / "config.json"
    if not config_path.is_file():
        return "mean"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    raise ModelNotAvailable(
        f"{folder}: only mean or CLS pooling runs on ONNX here; set LOCAL_EMBEDDING_RUNTIME=torch"
    )


def _slug(name: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in name)[-60:]


def _fingerprint(folder: Path) -> str:
    """Changes when the model's weights or config change, so a stale export is never reused."""
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for name in ("config.json", "model.safetensors", "pytorch_model.bin"):
        path = folder / name
        if path.is_file():
            stat = path.stat()
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]
