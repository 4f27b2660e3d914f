"""Plain data shared by adapters, use cases and the HTTP layer. No behaviour beyond small helpers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Section:
    """A structural unit of extracted text: the heading path above it and its character span."""

    heading_path: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    """Text pulled out of one file by a loader, with its structure (sections cover the text in order)."""

    text: str
    sections: tuple[Section, ...]
    title: str | None = None


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    """A chunk before it is stored: text is exactly `document.text[start:end]`."""

    text: str
    heading_path: tuple[str, ...]
    start: int
    end: int
    token_count: int


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    """A stored document. `path` is the source path (or upload file name) it came from."""

    id: str
    collection: str
    path: str
    content_hash: str
    chunk_count: int
    char_count: int
    created_at: str
    title: str | None = None

    def as_dict(self) -> dict[str, str | int | None]:
        """The fields as the API and `ragchat documents list --json` show them, in that order."""
        return {
            "id": self.id,
            "collection": self.collection,
            "path": self.path,
            "title": self.title,
            "chunk_count": self.chunk_count,
            "char_count": self.char_count,
            "content_hash": self.content_hash,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Passage:
    """A stored chunk returned by retrieval, with the fused score and the ranks that produced it."""

    chunk_id: str
    document_id: str
    document_path: str
    collection: str
    heading_path: tuple[str, ...]
    text: str
    start: int
    end: int
    score: float
    keyword_rank: int | None = None
    vector_rank: int | None = None

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)


@dataclass(slots=True)
class IngestReport:
    """What one ingest run did, file by file."""

    added: list[DocumentRecord] = field(default_factory=list)
    replaced: list[DocumentRecord] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def chunk_count(self) -> int:
        return sum(doc.chunk_count for doc in (*self.added, *self.replaced))
