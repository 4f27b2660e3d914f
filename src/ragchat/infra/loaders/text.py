"""Plain text files, and the byte-to-text decoding that the Markdown loader shares.

Decoding order: UTF-16 when the file starts with its BOM, UTF-8 (a UTF-8 BOM is dropped), then the
encoding that `charset-normalizer` detects. Detection cannot tell the Latin-script code pages apart on
short texts (French cp1252 text is often reported as Baltic cp1257), so when it names one of those, the
text is read as cp1252, the Windows default for Western languages and a superset of latin-1; Cyrillic,
Greek, CJK and other detections are used as detected (a Windows code page preferred over an equally
likely Mac one). Binary data (NUL bytes, or many control
characters) is refused rather than indexed as garbage.
"""

from __future__ import annotations

import codecs
import re

from ragchat.domain import ExtractedDocument, Section
from ragchat.infra.loaders import BadFile

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_MAX_CONTROL_SHARE = 0.01
_LATIN_CODE_PAGES = frozenset(
    {
        "ascii", "latin_1", "cp1250", "cp1252", "cp1254", "cp1257", "cp437", "cp775", "cp850", "cp852",
        "cp858", "iso8859_2", "iso8859_3", "iso8859_4", "iso8859_9", "iso8859_10", "iso8859_13",
        "iso8859_14", "iso8859_15", "iso8859_16", "mac_roman", "mac_latin2", "mac_iceland", "mac_turkish",
    }
)  # fmt: skip
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")


def decode_text(data: bytes, name: str) -> str:
    """Bytes of a text file as `str`, or `BadFile` saying why they are not usable text."""
    if not data.strip():
        raise BadFile(f"{name} is empty: there is no text to index")
    text = _decode(data, name)
    control_chars = len(_CONTROL_CHARS.findall(text))
    if control_chars > _MAX_CONTROL_SHARE * len(text):
        raise BadFile(
            f"{name} looks like binary data, not text ({control_chars} control characters); "
            "if it is a document, save it as .txt/.md in UTF-8"
        )
    return text


def normalize_newlines(text: str) -> str:
    """Unix newlines, no trailing spaces on lines, at most one blank line in a row, no outer blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUN.sub("\n\n", text).strip("\n").rstrip()


def load_text(name: str, data: bytes) -> ExtractedDocument:
    """One section covering the whole text; the chunker splits it at blank lines and sentences."""
    text = normalize_newlines(decode_text(data, name))
    if not text.strip():
        raise BadFile(f"{name} holds only whitespace: there is no text to index")
    return ExtractedDocument(text=text, sections=(Section((), 0, len(text)),), title=None)


def _decode(data: bytes, name: str) -> str:
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                break
    if b"\x00" in data:
        raise BadFile(
            f"{name} looks like binary data, not text (it contains NUL bytes); "
            "if it is a document, save it as .txt/.md in UTF-8"
        )
    try:
        return data.decode("utf-8-sig")  # plain UTF-8, and UTF-8 with a byte-order mark
    except UnicodeDecodeError:
        pass
    return _decode_legacy(data, name)


def _decode_legacy(data: bytes, name: str) -> str:
    from charset_normalizer import from_bytes

    matches = [match for match in from_bytes(data) if match.encoding]
    if not matches:
        raise BadFile(
            f"{name} is not UTF-8 and its encoding could not be detected; "
            "convert it to UTF-8 (for example `iconv -f cp1252 -t utf-8`)"
        )
    best = matches[0]
    windows = (m for m in matches if m.encoding.startswith("cp125") and m.percent_chaos <= best.percent_chaos)
    encoding = next(windows, best).encoding  # Windows code pages are far more common than Mac ones
    if encoding in _LATIN_CODE_PAGES:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:  # one of the five bytes cp1252 leaves undefined
            pass
    return data.decode(encoding, errors="replace")
