"""Text extraction: one loader per file type, chosen by suffix.

`load_document(path)` returns an `ExtractedDocument` or raises `UnsupportedFile` / `BadFile` with a message
a user can act on (encrypted PDF, binary data named .txt, empty file, ...).

    LoadError            any file that cannot be turned into text
    ├── UnsupportedFile  a suffix ragchat does not read
    └── BadFile          a supported type whose content is unusable
"""

from __future__ import annotations

from pathlib import Path

from ragchat.domain import ExtractedDocument


class LoadError(Exception):
    """A file that cannot be turned into text; `str(error)` is the reason shown to the user."""


class UnsupportedFile(LoadError):
    """The file type is not one ragchat reads (the message lists the supported suffixes)."""


class BadFile(LoadError):
    """The file has a supported type but its content is unusable (corrupt, encrypted, binary, empty...)."""


SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx")


def load_document(path: Path) -> ExtractedDocument:
    """Extract the text and sections of the file at `path`, choosing the loader by its suffix.

    Raises `UnsupportedFile` for other suffixes and `BadFile` for unusable content. Offsets in the
    returned sections index `ExtractedDocument.text`, which is what chunks and citations point into.
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = f"'{suffix}'" if suffix else "no suffix"
        raise UnsupportedFile(
            f"{path.name}: unsupported file type ({shown}); ragchat reads {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not path.is_file():
        raise BadFile(f"{path.name} is not a readable file")
    try:
        if suffix in (".md", ".markdown"):
            from ragchat.infra.loaders.markdown import load_markdown

            return load_markdown(path)
        if suffix == ".txt":
            from ragchat.infra.loaders.text import load_text

            return load_text(path)
        if suffix in (".html", ".htm"):
            from ragchat.infra.loaders.html import load_html

            return load_html(path)
        if suffix == ".pdf":
            from ragchat.infra.loaders.pdf import load_pdf

            return load_pdf(path)
        from ragchat.infra.loaders.docx import load_docx

        return load_docx(path)
    except PermissionError:
        raise BadFile(f"{path.name} cannot be read: permission denied") from None
