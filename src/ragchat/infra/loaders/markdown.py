"""Markdown files: the source text is kept as written; ATX and Setext headings become sections.

markdown-it-py (CommonMark) finds the headings, so a `# comment` inside a code fence is not mistaken for
one. Keeping the Markdown source (rather than rendering it) lets a citation quote exactly what the
author wrote.
"""

from __future__ import annotations

from ragchat.domain import ExtractedDocument, Section
from ragchat.infra.loaders import BadFile
from ragchat.infra.loaders._builder import collapse_whitespace
from ragchat.infra.loaders.text import decode_text, normalize_newlines


def load_markdown(name: str, data: bytes) -> ExtractedDocument:
    """Sections start at each heading line and run to the next heading."""
    from markdown_it import MarkdownIt

    text = normalize_newlines(decode_text(data, name))
    if not text.strip():
        raise BadFile(f"{name} holds only whitespace: there is no text to index")

    line_starts = [0]
    for index, char in enumerate(text):
        if char == "\n":
            line_starts.append(index + 1)

    headings: list[tuple[int, int, str]] = []  # (char offset, level, title)
    tokens = MarkdownIt("commonmark").parse(text)
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.map is not None:
            title = collapse_whitespace(tokens[index + 1].content)
            if title:
                headings.append((line_starts[token.map[0]], int(token.tag[1]), title))

    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    boundaries = [offset for offset, _, _ in headings] + [len(text)]
    if not headings or headings[0][0] > 0:
        _add_section(sections, (), text, 0, boundaries[0])
    for (offset, level, title), end in zip(headings, boundaries[1:], strict=True):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        _add_section(sections, tuple(t for _, t in stack), text, offset, end)

    first_h1 = (title for _, level, title in headings if level == 1)
    document_title = next(first_h1, headings[0][2] if headings else None)
    return ExtractedDocument(text=text, sections=tuple(sections), title=document_title)


def _add_section(sections: list[Section], path: tuple[str, ...], text: str, start: int, end: int) -> None:
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        sections.append(Section(path, start, end))
