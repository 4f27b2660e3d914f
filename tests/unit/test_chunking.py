"""Chunking with the real all-MiniLM-L6-v2 tokenizer: exact offsets, token limits, overlap, headings."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ragchat.core.chunking import MAX_HEADING_PREFIX_CHARS, Chunker, embedding_text
from ragchat.domain import ChunkDraft, ExtractedDocument, Section
from ragchat.infra.embeddings.model_files import ModelTokenizer
from ragchat.infra.loaders import load_document


@pytest.fixture(scope="module")
def tokenizer() -> ModelTokenizer:
    return ModelTokenizer.for_model("all-MiniLM-L6-v2")


SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
    "Volcanic eruptions release ash, gases and lava that reshape the surrounding landscape.",
    "Sourdough starters need regular feeding with flour and water to stay active.",
    "Interoperability between systems depends on well-documented, versioned interfaces.",
    "A hash map offers constant-time lookups on average, but worst cases can degrade badly.",
]


def long_markdown(sections: int = 4, paragraphs: int = 6) -> str:
    parts = ["# Handbook", "A short introduction."]
    for number in range(sections):
        parts.append(f"## Chapter {number}")
        for paragraph in range(paragraphs):
            parts.append(" ".join(SENTENCES[(number + paragraph + i) % 5] for i in range(4)))
    return "\n\n".join(parts) + "\n"


def assert_chunks_are_exact(
    doc: ExtractedDocument, chunks: list[ChunkDraft], tokenizer: ModelTokenizer
) -> None:
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start : chunk.end]
        assert chunk.token_count == tokenizer.count(chunk.text)  # the model sees exactly these tokens
        assert chunk.text == chunk.text.strip()


def test_every_chunk_is_the_exact_text_span_it_claims(tmp_path: Path, tokenizer: ModelTokenizer) -> None:
    doc = load_document("handbook.md", long_markdown().encode())
    chunks = Chunker(tokenizer, 64, 12).split(doc)

    assert len(chunks) > 8
    assert_chunks_are_exact(doc, chunks, tokenizer)
    assert all(chunk.token_count <= 64 for chunk in chunks)
    assert [chunk.start for chunk in chunks] == sorted(chunk.start for chunk in chunks)


def test_no_text_is_lost(tmp_path: Path, tokenizer: ModelTokenizer) -> None:
    doc = load_document("handbook.md", long_markdown().encode())
    chunks = Chunker(tokenizer, 64, 12).split(doc)

    covered = [False] * len(doc.text)
    for chunk in chunks:
        covered[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
    for start, end in tokenizer.token_offsets(doc.text):
        assert all(covered[start:end]), doc.text[start:end]


def test_chunks_never_exceed_the_model_limit(tokenizer: ModelTokenizer) -> None:
    text = " ".join(SENTENCES * 40)
    doc = ExtractedDocument(text=text, sections=(Section((), 0, len(text)),))
    chunker = Chunker(tokenizer, 10_000, 32)

    chunks = chunker.split(doc)

    assert chunker.chunk_tokens == tokenizer.max_tokens == 254  # 256 minus [CLS] and [SEP]
    assert max(chunk.token_count for chunk in chunks) <= 254
    assert_chunks_are_exact(doc, chunks, tokenizer)


@pytest.mark.parametrize(
    "run_on",
    ["-".join(f"item{i}" for i in range(600)), "中文文本没有空格所以只能在字之间切开" * 60],
    ids=["punctuated", "chinese"],
)
def test_text_without_spaces_is_still_cut_within_the_limit(tokenizer: ModelTokenizer, run_on: str) -> None:
    text = f"Before. {run_on} After."
    doc = ExtractedDocument(text=text, sections=(Section((), 0, len(text)),))

    chunks = Chunker(tokenizer, 100, 10).split(doc)

    assert len(chunks) > 5
    assert all(chunk.token_count <= 100 for chunk in chunks)
    assert_chunks_are_exact(doc, chunks, tokenizer)


def test_consecutive_chunks_of_a_long_section_overlap(tokenizer: ModelTokenizer) -> None:
    text = " ".join(SENTENCES * 12)
    doc = ExtractedDocument(text=text, sections=(Section(("Only",), 0, len(text)),))

    chunks = Chunker(tokenizer, 60, 15).split(doc)

    assert len(chunks) >= 5
    for previous, following in itertools.pairwise(chunks):
        assert following.start < previous.end  # shared text
        shared = tokenizer.count(text[following.start : previous.end])
        assert 0 < shared <= 15
        assert text[following.start - 1] == " "  # the overlap starts at a word


def test_cuts_prefer_sentence_ends(tokenizer: ModelTokenizer) -> None:
    text = " ".join(SENTENCES * 12)
    doc = ExtractedDocument(text=text, sections=(Section((), 0, len(text)),))

    chunks = Chunker(tokenizer, 60, 0).split(doc)

    assert all(chunk.text.endswith(".") for chunk in chunks)
    assert all(chunk.text[0].isupper() for chunk in chunks)


def test_cuts_prefer_paragraph_breaks(tokenizer: ModelTokenizer) -> None:
    paragraphs = [" ".join(SENTENCES[i % 5 : i % 5 + 2]) for i in range(20)]
    text = "\n\n".join(paragraphs)
    doc = ExtractedDocument(text=text, sections=(Section((), 0, len(text)),))

    chunks = Chunker(tokenizer, 80, 0).split(doc)

    assert all(chunk.text in text for chunk in chunks)
    assert all(text[chunk.end : chunk.end + 2] in ("\n\n", "") for chunk in chunks)


def test_chunks_record_their_heading_path_and_stay_inside_sections(
    tmp_path: Path, tokenizer: ModelTokenizer
) -> None:
    doc = load_document("handbook.md", long_markdown().encode())
    chunks = Chunker(tokenizer, 64, 12).split(doc)

    for chunk in chunks:
        if chunk.heading_path[-1:] == ("Chapter 2",):
            section = next(s for s in doc.sections if s.heading_path == ("Handbook", "Chapter 2"))
            assert section.start <= chunk.start and chunk.end <= section.end
    assert {chunk.heading_path for chunk in chunks} >= {("Handbook", f"Chapter {n}") for n in range(4)}


def test_a_bare_heading_leads_the_section_after_it(tokenizer: ModelTokenizer) -> None:
    body = " ".join(SENTENCES * 3)
    text = f"Reference\n\nparse\n\n{body}"
    doc = ExtractedDocument(
        text=text,
        sections=(
            Section(("Reference",), 0, 9),
            Section(("Reference", "parse"), 11, len(text)),
        ),
    )

    chunks = Chunker(tokenizer, 200, 20).split(doc)

    assert chunks[0].text.startswith("Reference\n\nparse\n\n")
    assert chunks[0].heading_path == ("Reference", "parse")


def test_small_sibling_sections_share_a_chunk_labelled_by_their_parent(tokenizer: ModelTokenizer) -> None:
    entries = [
        ("loads", "Deserialize a string."),
        ("dumps", "Serialize an object."),
        ("load", "Read a file."),
    ]
    text, sections = "", []
    for name, description in entries:
        start = len(text)
        text += f"{name}\n\n{description}\n\n"
        sections.append(Section(("json", name), start, len(text) - 2))
    text = text.rstrip()
    doc = ExtractedDocument(text=text, sections=tuple(sections))

    chunks = Chunker(tokenizer, 200, 20).split(doc)

    assert len(chunks) == 1
    assert chunks[0].heading_path == ("json",)
    assert chunks[0].text == text


def test_large_sections_are_not_merged(tmp_path: Path, tokenizer: ModelTokenizer) -> None:
    doc = load_document("handbook.md", long_markdown(sections=3, paragraphs=2).encode())
    chunks = Chunker(tokenizer, 200, 20).split(doc)

    chapters = [chunk.heading_path for chunk in chunks if len(chunk.heading_path) == 2]
    assert chapters == [("Handbook", "Chapter 0"), ("Handbook", "Chapter 1"), ("Handbook", "Chapter 2")]


def test_empty_and_untokenizable_documents_give_no_chunks(tokenizer: ModelTokenizer) -> None:
    chunker = Chunker(tokenizer, 100, 10)
    assert chunker.split(ExtractedDocument(text="", sections=())) == []
    assert chunker.split(ExtractedDocument(text="\u200b\u200b", sections=(Section((), 0, 2),))) == []


def test_heading_prefix_and_chunk_fit_the_model_together(tokenizer: ModelTokenizer) -> None:
    titles = ("A rather long chapter title about configuration", "Section on environment variables") * 4
    body = " ".join(SENTENCES * 30)
    doc = ExtractedDocument(text=body, sections=(Section(titles, 0, len(body)),))

    chunks = Chunker(tokenizer, 254, 20).split(doc)

    assert len(chunks) > 3
    for chunk in chunks:
        embedded = embedding_text(chunk)
        assert tokenizer.count(embedded) <= tokenizer.max_tokens
        assert embedded.endswith(chunk.text)
        assert len(embedded) - len(chunk.text) <= MAX_HEADING_PREFIX_CHARS + 2 + len(" > ") * 8


def test_embedding_text_puts_the_heading_path_first() -> None:
    chunk = ChunkDraft(
        text="Serialize obj.", heading_path=("json", "json.dumps"), start=0, end=14, token_count=4
    )
    assert embedding_text(chunk) == "json > json.dumps\n\nSerialize obj."
    untitled = ChunkDraft(text="Plain.", heading_path=(), start=0, end=6, token_count=2)
    assert embedding_text(untitled) == "Plain."
