"""Text extraction: one loader per file type, chosen by suffix.

`load_document(path)` returns an `ExtractedDocument` or raises `UnsupportedFile` / `BadFile` with a message
a user can act on (encrypted PDF, binary data named .txt, empty file, ...).
"""


class LoadError(Exception):
    """A file that cannot be turned into text; `str(error)` is the reason shown to the user."""


class UnsupportedFile(LoadError):
    """The file type is not one ragchat reads (the message lists the supported suffixes)."""


class BadFile(LoadError):
    """The file has a supported type but its content is unusable (corrupt, encrypted, binary, empty...)."""


SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx")
