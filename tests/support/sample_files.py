"""Real test files made with real libraries: PDFs (hand-built, then rewritten and encrypted by pypdf),
DOCX (python-docx), and the bad inputs ragchat must refuse cleanly."""

from __future__ import annotations

import io
import os
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
