"""PDF files: text per page with pypdf; each page is a section whose heading path is the outline
(bookmark) entry covering it, if the PDF has one, followed by `page N`.

Encrypted PDFs open when they only carry an owner password (an empty user password); otherwise the user
is told to remove the password. Scanned PDFs (no text layer) are refused with a hint to run OCR. Streams
and pages are checked against `ParseLimits` before any text is extracted.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from ragchat.domain import ExtractedDocument
from ragchat.infra.loaders import BadFile, OverLimit, ParseLimits
from ragchat.infra.loaders._builder import DocumentBuilder, collapse_whitespace
from ragchat.infra.loaders.containers import check_pdf_streams
from ragchat.infra.loaders.text import normalize_newlines

_PAGE_LEVEL = 99  # below every outline level


def load_pdf(name: str, data: bytes, limits: ParseLimits) -> ExtractedDocument:
    """Extract the text of every page; raise `BadFile` for corrupt, encrypted or image-only PDFs."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-but-readable files log noisily
    check_pdf_streams(name, data, limits)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise BadFile(_encrypted_message(name))
        if len(reader.pages) > limits.max_pdf_pages:
            raise OverLimit(
                f"{name} has {len(reader.pages):,} pages, over the limit of {limits.max_pdf_pages:,} "
                "(RAGCHAT_MAX_PDF_PAGES)"
            )
        pages = [page.extract_text() or "" for page in reader.pages]
    except BadFile:
        raise
    except LimitReachedError as exc:
        raise OverLimit(f"{name} goes over a limit of the PDF parser: {exc}") from None
    except (FileNotDecryptedError, DependencyError):
        raise BadFile(_encrypted_message(name)) from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise BadFile(f"{name} is not a readable PDF (corrupt or truncated?): {exc}") from None

    if not any(page_text.strip() for page_text in pages):
        raise BadFile(
            f"{name} has no extractable text (a scanned or image-only PDF?); "
            "run OCR first (for example `ocrmypdf in.pdf out.pdf`) and ingest the result"
        )
    outline_starts = _outline_starts(reader)
    builder = DocumentBuilder()
    for number, page_text in enumerate(pages, start=1):
        for level, title in outline_starts.get(number, ()):
            builder.heading(level, title, in_text=False)
        builder.heading(_PAGE_LEVEL, f"page {number}", in_text=False)
        builder.block(normalize_newlines(page_text))
    return builder.build(title=_metadata_title(reader))


def _encrypted_message(name: str) -> str:
    return (
        f"{name} is encrypted with a password; remove the protection "
        "(for example `qpdf --decrypt --password=... in.pdf out.pdf`) and ingest it again"
    )


def _metadata_title(reader: Any) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # broken metadata must not cost the document
        return None
    return collapse_whitespace(str(title)) or None if title else None


def _outline_starts(reader: Any) -> dict[int, list[tuple[int, str]]]:
    """Page number -> outline entries (level, title) that start on it, in order."""
    starts: dict[int, list[tuple[int, str]]] = {}

    def walk(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            title = collapse_whitespace(str(getattr(item, "title", "") or ""))
            page_index = reader.get_destination_page_number(item)
            if title and page_index is not None and page_index >= 0:
                starts.setdefault(page_index + 1, []).append((level, title))

    try:
        walk(reader.outline, 1)
    except Exception:  # an outline is a bonus; a broken one is ignored
        return {}
    return starts
