"""Real test files made with real libraries: PDFs (hand-built, then rewritten and encrypted by pypdf),
DOCX (python-docx), and the bad inputs ragchat must refuse cleanly."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(paragraphs: list[str]) -> bytes:
    """A valid one-page PDF whose text layer holds `paragraphs` (one line each), as pypdf writes it."""
    from pypdf import PdfReader, PdfWriter

    shown = " ".join(f"({_pdf_escape(line)}) '" for line in paragraphs)
    content = f"BT /F1 11 Tf 72 740 Td 14 TL {shown} ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >>"
        b" /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(bytes(out))))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def encrypted_pdf_bytes(paragraphs: list[str], password: str = "secret") -> bytes:
    """A PDF that needs a user password to open (pypdf's encryption)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(paragraphs))))
    writer.encrypt(user_password=password, owner_password=password, algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def corrupt_pdf_bytes() -> bytes:
    """A PDF header followed by garbage and a truncated object: what a broken download looks like."""
    return pdf_bytes(["This PDF will be cut short."])[:120] + b"\x00\xff garbage" * 20


def docx_bytes(heading: str, paragraphs: list[str]) -> bytes:
    """A Word document with one heading and some paragraphs, written by python-docx."""
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def binary_bytes(size: int = 4096) -> bytes:
    """Random bytes (with NULs), as in an executable or image renamed to .txt."""
    return os.urandom(size) + b"\x00" * 16


def write(path: Path, data: bytes | str) -> Path:
    """Write `data` to `path` (text as UTF-8), creating folders; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


TOPICS = {
    "volcanoes.md": (
        "# Volcanoes\n\nA volcano is a rupture in the crust of a planet that lets hot lava, volcanic ash and "
        "gases escape from a magma chamber below the surface.\n\n## Eruptions\n\nEruptions happen when "
        "pressure from dissolved gases in the magma grows too large. Basaltic lava flows are runny; "
        "andesitic magma is sticky and tends to explode."
    ),
    "sourdough.txt": (
        "Baking sourdough bread\n\nA sourdough starter is a culture of wild yeast and lactic acid bacteria. "
        "Feed the starter with flour and water every day. The dough rises slowly overnight in a cool "
        "kitchen, and the loaf is baked in a hot Dutch oven for a crisp crust."
    ),
    "chess.html": (
        "<html><head><title>Chess openings</title></head><body><main><h1>Chess openings</h1>"
        "<p>The Sicilian Defence answers 1.e4 with 1...c5 and leads to sharp, unbalanced positions.</p>"
        "<h2>Queen's Gambit</h2><p>The Queen's Gambit starts 1.d4 d5 2.c4, offering a pawn to gain "
        "control of the centre.</p></main></body></html>"
    ),
}


# --- crafted hostile files (small on disk, made in the test) ------------------------------------------

_WORD_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_MB = 1024 * 1024


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _zip(entries: list[tuple[str, bytes, int, int]]) -> bytes:
    """A ZIP of already deflated entries: (name, raw deflate bytes, CRC-32, uncompressed size) each."""
    out = bytearray()
    central = bytearray()
    for name, deflated, crc, size in entries:
        encoded = name.encode()
        offset = len(out)
        out += struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(deflated), size, len(encoded), 0
        )
        out += encoded + deflated
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(deflated), size, len(encoded),
            0, 0, 0, 0, 0, offset,
        )  # fmt: skip
        central += encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(out), 0)
    return bytes(out + central + end)


def docx_with_part(part: str, content: bytes, base: bytes | None = None) -> bytes:
    """A .docx (by default a small valid one) whose part `part` is replaced by (or added as) `content`."""
    with zipfile.ZipFile(io.BytesIO(base or docx_bytes("Report", ["Some text."]))) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts[part] = content
    return _zip([(name, _raw_deflate(data), zlib.crc32(data), len(data)) for name, data in parts.items()])


def docx_bomb(inflated_bytes: int) -> bytes:
    """A ~1 KB-per-MB .docx whose word/document.xml inflates to `inflated_bytes`: an XML declaration, then
    spaces (deflated once per MB and repeated: a real ZIP bomb, made in well under a second)."""
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    block = b" " * _MB
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head + block) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks = max(inflated_bytes // _MB, 1)
    body = (
        f'<w:document xmlns:w="{_WORD_NS}"><w:body><w:p><w:r><w:t>x</w:t></w:r></w:p></w:body></w:document>'
    )
    tail = compressor.compress(body.encode()) + compressor.flush()
    deflated = first + repeated * (blocks - 1) + tail
    crc = zlib.crc32(head + block)
    for _ in range(blocks - 1):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(body.encode(), crc)
    size = len(head) + blocks * _MB + len(body.encode())
    with zipfile.ZipFile(io.BytesIO(docx_bytes("Bomb", ["x"]))) as archive:
        parts = {name: archive.read(name) for name in archive.namelist() if name != "word/document.xml"}
    entries = [(name, _raw_deflate(data), zlib.crc32(data), len(data)) for name, data in parts.items()]
    return _zip([*entries, ("word/document.xml", deflated, crc, size)])


def _word_document(body: str, doctype: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}<w:document xmlns:w="{_WORD_NS}"><w:body>'
        f"{body}</w:body></w:document>"
    ).encode()


def docx_of_empty_paragraphs(count: int, text: str) -> bytes:
    """A .docx of `count` empty paragraphs followed by one paragraph of `text`."""
    body = "<w:p/>" * count + f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"
    return docx_with_part("word/document.xml", _word_document(body))


def docx_with_entities() -> bytes:
    """A .docx whose document.xml declares nested entities ("billion laughs": 10^9 'lol's if expanded)."""
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    doctype = f"<!DOCTYPE w:document [{''.join(entities)}]>\n"
    return docx_with_part(
        "word/document.xml", _word_document("<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>", doctype)
    )


def docx_with_malformed_xml() -> bytes:
    """A .docx whose document.xml is cut off mid-element."""
    return docx_with_part("word/document.xml", _word_document("<w:p><w:r><w:t>half")[:-40])


def pdf_with_flate_stream(inflated_bytes: int, text: str = "A page of text.") -> bytes:
    """A one-page PDF whose content stream is FlateDecode'd and inflates to `inflated_bytes` (whitespace
    after the text operators), as a PDF bomb would; written by hand so nothing inflates it here."""
    content = f"BT /F1 11 Tf 72 740 Td ({_pdf_escape(text)}) Tj ET\n".encode("latin-1")
    compressor = zlib.compressobj(9)
    block = b" " * _MB
    parts = [compressor.compress(content)]
    parts += [compressor.compress(block) for _ in range(inflated_bytes // _MB)]
    stream = b"".join(parts) + compressor.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >>"
        b" /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
