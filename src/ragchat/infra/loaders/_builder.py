"""Assembles extracted text block by block and records the heading path of each section.

Loaders feed headings and text blocks in reading order; blocks are joined by a blank line, headings are
kept in the text (they are words users search for) and each heading opens a new `Section` whose span starts
at the heading and ends at the last character of its last block.
"""

from __future__ import annotations

import re

from ragchat.domain import ExtractedDocument, Section

_SPACE_RUN = re.compile(r"\s+")
BLOCK_SEPARATOR = "\n\n"


def collapse_whitespace(text: str) -> str:
    """One space for every run of whitespace, none at either end."""
    return _SPACE_RUN.sub(" ", text).strip()


class DocumentBuilder:
    """Accumulates text and sections; `build()` returns the `ExtractedDocument`."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._stack: list[tuple[int, str]] = []
        self._sections: list[Section] = []
        self._section_start: int | None = None
        self._section_end = 0
        self._first_heading: str | None = None

    @property
    def heading_path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._stack)

    def heading(self, level: int, title: str, *, in_text: bool = True) -> None:
        """Open a section titled `title` at `level` (1 = outermost); deeper open headings are closed.

        With `in_text=False` the title only labels the section (a PDF page number, say) and adds no text.
        """
        title = collapse_whitespace(title)
        if not title:
            return
        self._close_section()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, title))
        if in_text:
            self._first_heading = self._first_heading or title
            self.block(title)

    def close_headings(self, level: int) -> None:
        """End every open heading at `level` or deeper: following text belongs to the enclosing section."""
        if any(open_level >= level for open_level, _ in self._stack):
            self._close_section()
            while self._stack and self._stack[-1][0] >= level:
                self._stack.pop()

    def block(self, text: str) -> None:
        """Append one block (paragraph, list item, code block...); blank blocks are ignored."""
        text = text.strip("\n")
        if not text.strip():
            return
        if self._length:
            self._append(BLOCK_SEPARATOR)
        if self._section_start is None:
            self._section_start = self._length
        self._append(text)
        self._section_end = self._length

    def build(self, title: str | None = None) -> ExtractedDocument:
        """The document so far; `title` defaults to the first heading."""
        self._close_section()
        return ExtractedDocument(
            text="".join(self._parts),
            sections=tuple(self._sections),
            title=title or self._first_heading,
        )

    def _append(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)

    def _close_section(self) -> None:
        if self._section_start is not None:
            self._sections.append(Section(self.heading_path, self._section_start, self._section_end))
        self._section_start = None
