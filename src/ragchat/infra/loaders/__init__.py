"""Text extraction: one loader per file type, chosen by the file name's suffix.

`load_document(name, data, limits)` turns the bytes of a file named `name` (as the user named it: no
server path ever reaches a loader, so none can appear in a message) into an `ExtractedDocument`, or raises
a `LoadError` whose message a user can act on (encrypted PDF, binary data named .txt, empty file, a ZIP
bomb...). Containers are checked against `ParseLimits` before they are parsed. Loaders trust nothing in
the file but are not sandboxed: run them through `ragchat.infra.parsing.ParserPool` (separate processes
with memory and time limits) whenever the input comes from outside.

    LoadError            any file that cannot be turned into text
    ├── UnsupportedFile  a suffix ragchat does not read
    └── BadFile          a supported type whose content is unusable
        └── OverLimit    a file that goes over one of the `ParseLimits` (or the parser's memory or time)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from ragchat.domain import ExtractedDocument

_MB = 1024 * 1024


class LoadError(Exception):
    """A file that cannot be turned into text; `str(error)` is the reason shown to the user."""


class UnsupportedFile(LoadError):
    """The file type is not one ragchat reads (the message lists the supported suffixes)."""


class BadFile(LoadError):
    """The file has a supported type but its content is unusable (corrupt, encrypted, binary, empty...)."""


class OverLimit(BadFile):
    """The file goes over a limit on parsing; the message names the limit and the setting that raises it."""


SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx")


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """What one file may make a loader do; each field is set by the environment variable in its comment."""

    max_part_bytes: int = 100 * _MB  # RAGCHAT_MAX_PART_MB: one ZIP entry or PDF stream, uncompressed
    max_uncompressed_bytes: int = 500 * _MB  # RAGCHAT_MAX_UNCOMPRESSED_MB: all of them together
    max_compression_ratio: float = 100.0  # RAGCHAT_MAX_COMPRESSION_RATIO: ZIP entries over 1 MB
    max_pdf_pages: int = 5000  # RAGCHAT_MAX_PDF_PAGES
    max_xml_elements: int = 2_000_000  # RAGCHAT_MAX_XML_ELEMENTS: a .docx's XML parts, or an HTML page
    max_xml_depth: int = 200  # RAGCHAT_MAX_XML_DEPTH: nesting of those elements


def check_supported(name: str) -> None:
    """Raise `UnsupportedFile` unless the suffix of the file name `name` is one ragchat reads."""
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = f"'{suffix}'" if suffix else "no suffix"
        raise UnsupportedFile(
            f"{name}: unsupported file type ({shown}); ragchat reads {', '.join(SUPPORTED_SUFFIXES)}"
        )


def load_document(name: str, data: bytes, limits: ParseLimits | None = None) -> ExtractedDocument:
    """Extract the text and sections of `data`, the bytes of the file named `name`, by its suffix.

    Raises `UnsupportedFile` for other suffixes, `OverLimit` when the file goes over `limits` (default
    `ParseLimits()`) and `BadFile` for unusable content. Offsets in the returned sections index
    `ExtractedDocument.text`, which is what chunks and citations point into.
    """
    check_supported(name)
    limits = limits or ParseLimits()
    suffix = PurePath(name).suffix.lower()
    if suffix in (".md", ".markdown"):
        from ragchat.infra.loaders.markdown import load_markdown

        return load_markdown(name, data)
    if suffix == ".txt":
        from ragchat.infra.loaders.text import load_text

        return load_text(name, data)
    if suffix in (".html", ".htm"):
        from ragchat.infra.loaders.html import load_html

        return load_html(name, data, limits)
    if suffix == ".pdf":
        from ragchat.infra.loaders.pdf import load_pdf

        return load_pdf(name, data, limits)
    from ragchat.infra.loaders.docx import load_docx

    return load_docx(name, data, limits)
