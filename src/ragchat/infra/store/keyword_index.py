"""BM25 keyword search over the chunks of one collection: an in-memory tantivy index.

The index is derived data, like the store's vector matrix: the SQLite file holds the chunks, and the store
builds this index from them and updates it whenever a collection's generation moves (see `sqlite.py`). A
crash can therefore never leave it disagreeing with the data: a new process builds it again (with the
vectors; how long that takes is measured in docs/benchmarks.md, "Search latency").

Why tantivy and not SQLite's FTS5 (which ragchat used first): FTS5 scored every chunk holding any query
word, so a natural question cost far more CPU, and searching only the rarest words cost recall; tantivy
counts every word, is faster and ranks better on our question sets (docs/design-choices.md, "Storage and
retrieval"; figures in docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import tantivy

# The heading path counts half as much as the text (a word in "os.path > Functions" says less than one in
# the passage itself).
HEADING_BOOST = 0.5
_ANALYZER = "ragchat_english"
_MAX_TOKEN_CHARS = 40
_MAX_QUERY_TERMS = 64
_WRITER_HEAP_BYTES = 64_000_000


def _english_analyzer() -> tantivy.TextAnalyzer:
    """Words split at anything not a letter or digit, lowercased, accents folded, stemmed (Snowball English).

    `os.path.join` gives `os`, `path`, `join`; `dirs_exist_ok` gives `dir`, `exist`, `ok`; `Café` `cafe`.
    """
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(_MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


@dataclass(frozen=True, slots=True)
class IndexedChunk:
    """What the keyword index keeps of a chunk: its row id in the store, its document, text and heading."""

    rowid: int
    document_id: str
    text: str
    heading: str


class KeywordIndexUpdate:
    """Changes to a `KeywordIndex`, made visible to searches all at once when the update ends."""

    def __init__(self, writer: tantivy.IndexWriter) -> None:
        self._writer = writer

    def remove_document(self, document_id: str) -> None:
        """Remove every chunk of a document."""
        self._writer.delete_documents_by_term("document", document_id)

    def add(self, chunks: Iterable[IndexedChunk]) -> None:
        for chunk in chunks:
            self._writer.add_document(
                tantivy.Document(
                    rowid=chunk.rowid, document=chunk.document_id, text=chunk.text, heading=chunk.heading
                )
            )


class KeywordIndex:
    """BM25 over chunk text and heading path (weighted `HEADING_BOOST`), in memory.

    One writer at a time (the store updates under its lock); searches read the last committed state and may
    run in any thread while an update is under way.
    """

    def __init__(self) -> None:
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("rowid", stored=False, indexed=False, fast=True)
        builder.add_text_field("document", stored=False, tokenizer_name="raw")
        builder.add_text_field("text", stored=False, tokenizer_name=_ANALYZER)
        builder.add_text_field("heading", stored=False, tokenizer_name=_ANALYZER)
        self._schema = builder.build()
        self._index = tantivy.Index(self._schema)
        self._analyzer = _english_analyzer()
        self._index.register_tokenizer(_ANALYZER, self._analyzer)
        self._searcher = self._index.searcher()

    @contextmanager
    def update(self) -> Iterator[KeywordIndexUpdate]:
        """Collect removals and additions; on a clean exit they become visible together, on an exception
        none of them does."""
        writer = self._index.writer(_WRITER_HEAP_BYTES, 1)
        try:
            yield KeywordIndexUpdate(writer)
        except BaseException:
            writer.rollback()
            raise
        writer.commit()
        writer.wait_merging_threads()
        self._index.reload()
        self._searcher = self._index.searcher()

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The row ids of the `k` chunks that score best for the words of `query`, with their BM25 scores.

        Any text is a valid query: it is split into words by the index's own analyzer, never parsed, so
        quotes, operators and brackets are just characters.
        """
        terms = list(dict.fromkeys(self._analyzer.analyze(query)))[:_MAX_QUERY_TERMS]
        if not terms or k <= 0:
            return []
        clauses = []
        for term in terms:
            clauses.append((tantivy.Occur.Should, tantivy.Query.term_query(self._schema, "text", term)))
            heading = tantivy.Query.term_query(self._schema, "heading", term)
            clauses.append((tantivy.Occur.Should, tantivy.Query.boost_query(heading, HEADING_BOOST)))
        searcher = self._searcher
        result = searcher.search(tantivy.Query.boolean_query(clauses), k, count=False)
        addresses = [address for _, address in result.hits]
        # An integer field that every document has: never None.
        rowids = cast("list[int]", searcher.fast_field_values("rowid", addresses))
        return [(rowid, float(score)) for (score, _), rowid in zip(result.hits, rowids, strict=True)]
