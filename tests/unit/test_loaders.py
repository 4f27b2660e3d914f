"""Loaders on real files written by real libraries: text, structure, offsets, and clear refusals."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

import ragchat
from ragchat.domain import ExtractedDocument
from ragchat.infra.loaders import SUPPORTED_SUFFIXES, BadFile, UnsupportedFile, load_document
from tests.support.sample_files import (
    binary_bytes,
    corrupt_pdf_bytes,
    encrypted_pdf_bytes,
    pdf_bytes,
)


def load(name: str, data: bytes | str) -> ExtractedDocument:
    """`load_document` of `data` (text as UTF-8) as the file `name`."""
    return load_document(name, data.encode("utf-8") if isinstance(data, str) else data)


def section_texts(doc: ExtractedDocument) -> dict[tuple[str, ...], str]:
    return {section.heading_path: doc.text[section.start : section.end] for section in doc.sections}


def assert_sections_well_formed(doc: ExtractedDocument) -> None:
    previous_end = 0
    for section in doc.sections:
        assert previous_end <= section.start < section.end <= len(doc.text)
        assert doc.text[section.start : section.end].strip()
        previous_end = section.end


# --- Markdown -------------------------------------------------------------------------------------------

MARKDOWN = """Intro line before any heading.

# Guide

Welcome to the guide.

Setup
-----

Install it with pip.

```bash
# not a heading: a comment inside a code fence
pip install thing
```

### Details

Deep details here.

## Usage

Run it.
"""


def test_markdown_sections_follow_atx_and_setext_headings(tmp_path: Path) -> None:
    doc = load("guide.md", MARKDOWN)

    assert_sections_well_formed(doc)
    texts = section_texts(doc)
    assert list(texts) == [
        (),
        ("Guide",),
        ("Guide", "Setup"),
        ("Guide", "Setup", "Details"),
        ("Guide", "Usage"),
    ]
    assert texts[("Guide", "Setup")].startswith("Setup\n-----\n\nInstall it with pip.")
    assert "# not a heading" in texts[("Guide", "Setup")]
    assert texts[("Guide", "Usage")] == "## Usage\n\nRun it."
    assert doc.title == "Guide"


def test_markdown_keeps_the_source_text(tmp_path: Path) -> None:
    doc = load("notes.markdown", "# T\r\n\r\nSome *emphasis* and `code`.\r\n")
    assert doc.text == "# T\n\nSome *emphasis* and `code`."


# --- plain text and encodings ------------------------------------------------------------------------------

WORDS = "Café déjà vu, naïve “quotes” \u2013 and a € sign."  # en dash: a cp1252-only byte


@pytest.mark.parametrize(
    ("encoded", "label"),
    [
        (WORDS.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + WORDS.encode("utf-8"), "utf-8 with BOM"),
        (WORDS.encode("utf-16"), "utf-16 with BOM"),
        (((WORDS + " Ça coûte très cher à Noël.") * 3).encode("cp1252"), "cp1252"),
    ],
    ids=["utf-8", "utf-8-sig", "utf-16", "cp1252"],
)
def test_text_files_decode_in_any_common_encoding(tmp_path: Path, encoded: bytes, label: str) -> None:
    doc = load("words.txt", encoded)
    assert doc.text.startswith(WORDS), label
    assert doc.sections[0].heading_path == ()
    assert (doc.sections[0].start, doc.sections[0].end) == (0, len(doc.text))


def test_non_latin_legacy_encodings_are_detected(tmp_path: Path) -> None:
    russian = "Привет, как дела? Это проверка кодировки текста. " * 4
    doc = load("ru.txt", russian.encode("cp1251"))
    assert doc.text == russian.strip()


def test_text_newlines_are_normalised(tmp_path: Path) -> None:
    doc = load("a.txt", "one  \r\ntwo\r\n\r\n\r\n\r\nthree\n\n")
    assert doc.text == "one\ntwo\n\nthree"


def test_binary_data_named_txt_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadFile, match=r"binary data.*NUL"):
        load("photo.txt", binary_bytes())


def test_control_character_soup_is_refused(tmp_path: Path) -> None:
    data = bytes(range(1, 9)) * 200 + b"some words"
    with pytest.raises(BadFile, match="binary data"):
        load("weird.md", data)


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.html", "empty.pdf", "empty.docx"])
def test_empty_files_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadFile, match="empty"):
        load(name, b"")


def test_whitespace_only_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadFile, match="empty"):
        load("blank.txt", " \n\t\n  ")


def test_unsupported_suffix_lists_the_supported_ones(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFile) as caught:
        load("sheet.xlsx", b"PK")
    message = str(caught.value)
    assert "'.xlsx'" in message
    assert all(suffix in message for suffix in SUPPORTED_SUFFIXES)


# --- HTML ----------------------------------------------------------------------------------------------

SPHINX_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>json — JSON encoder &#8212; Python docs</title>
<script>var navigation = "SCRIPT TEXT";</script><style>.x {}</style></head>
<body>
<div class="mobile-nav"><nav class="nav-content">MOBILE NAV</nav></div>
<div class="related" role="navigation"><ul><li>RELATED LINKS</li></ul></div>
<div class="document"><div class="documentwrapper"><div class="bodywrapper">
<div class="body" role="main">
<section id="module-json">
<h1>json — JSON encoder<a class="headerlink" href="#module-json">¶</a></h1>
<p>JSON is a <strong>lightweight</strong>
   data interchange format.</p>
<section id="basic-usage">
<h2>Basic Usage<a class="headerlink" href="#basic-usage">¶</a></h2>
<dl class="py function">
<dt class="sig sig-object py" id="json.dumps">
<span class="sig-prename">json.</span><span class="sig-name">dumps</span>(<em>obj</em>)</dt>
<dd><p>Serialize <em>obj</em> to a JSON formatted str.</p>
<div class="highlight"><pre>&gt;&gt;&gt; json.dumps({"a": 1},
...            indent=4)</pre></div>
</dd></dl>
<p>Text after the API entry belongs to Basic Usage again.</p>
<dl class="py class">
<dt class="sig sig-object py" id="json.JSONEncoder">class json.JSONEncoder</dt>
<dd><p>Extensible encoder.</p>
<dl class="py method"><dt class="sig sig-object py" id="json.JSONEncoder.default">default(o)</dt>
<dd><p>Implement this method in a subclass.</p></dd></dl>
</dd></dl>
</section>
<section id="exceptions"><h2>Exceptions</h2>
<table><tr><th>Name</th><th>Meaning</th></tr><tr><td>JSONDecodeError</td><td>bad input</td></tr></table>
<ul><li>first item</li><li>second<br/>item</li></ul>
</section>
</section>
</div></div></div>
<div class="sphinxsidebar" role="navigation">SIDEBAR TABLE OF CONTENTS</div>
</div>
<div class="footer">FOOTER COPYRIGHT</div>
</body></html>
"""


def test_html_keeps_main_content_and_drops_navigation(tmp_path: Path) -> None:
    doc = load("json.html", SPHINX_PAGE)

    for noise in ("SCRIPT TEXT", "MOBILE NAV", "RELATED LINKS", "SIDEBAR", "FOOTER", "¶"):
        assert noise not in doc.text
    assert "JSON is a lightweight data interchange format." in doc.text
    assert '>>> json.dumps({"a": 1},\n...            indent=4)' in doc.text  # code keeps its lines
    assert "JSONDecodeError" in doc.text
    assert doc.title == "json — JSON encoder"


def test_html_sections_follow_headings_and_api_entries(tmp_path: Path) -> None:
    doc = load("json.html", SPHINX_PAGE)

    assert_sections_well_formed(doc)
    texts = section_texts(doc)
    top = "json — JSON encoder"
    assert texts[(top,)] == "json — JSON encoder\n\nJSON is a lightweight data interchange format."
    assert texts[(top, "Basic Usage", "json.dumps")].startswith("json.dumps\n\njson.dumps(obj)")
    assert "Text after the API entry" in texts[(top, "Basic Usage")]
    assert texts[(top, "Basic Usage", "json.JSONEncoder", "json.JSONEncoder.default")].endswith(
        "Implement this method in a subclass."
    )
    assert (top, "Exceptions") in texts


def test_html_in_a_legacy_encoding_uses_its_meta_charset(tmp_path: Path) -> None:
    page = '<html><head><meta charset="windows-1252"></head><body><p>Café crème</p></body></html>'
    doc = load("old.htm", page.encode("cp1252"))
    assert doc.text == "Café crème"


def test_html_without_text_is_refused(tmp_path: Path) -> None:
    page = "<html><body><nav>only navigation</nav><script>x()</script></body></html>"
    with pytest.raises(BadFile, match="no readable text"):
        load("nav.html", page)


def test_binary_named_html_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadFile, match="binary"):
        load("x.html", binary_bytes())


# --- PDF -----------------------------------------------------------------------------------------------


def multi_page_pdf(pages: list[list[str]], outline: list[tuple[str, int]] = ()) -> bytes:  # type: ignore[assignment]
    """Pages from `pdf_bytes`, merged by pypdf, with optional outline entries (title, page index)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for lines in pages:
        writer.add_page(PdfReader(io.BytesIO(pdf_bytes(lines))).pages[0])
    for title, page_index in outline:
        writer.add_outline_item(title=title, page_number=page_index)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_pdf_pages_become_sections_named_by_the_outline(tmp_path: Path) -> None:
    data = multi_page_pdf(
        [["Volcanoes erupt when pressure builds."], ["Lava cools into basalt."], ["Ash clouds travel far."]],
        outline=[("Eruptions", 0), ("Aftermath", 2)],
    )
    doc = load("volcano.pdf", data)

    assert_sections_well_formed(doc)
    assert [section.heading_path for section in doc.sections] == [
        ("Eruptions", "page 1"),
        ("Eruptions", "page 2"),
        ("Aftermath", "page 3"),
    ]
    assert section_texts(doc)[("Eruptions", "page 2")] == "Lava cools into basalt."
    assert "page 1" not in doc.text  # page labels name sections, they are not text


def test_pdf_with_a_user_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadFile, match=r"encrypted with a password.*qpdf"):
        load("locked.pdf", encrypted_pdf_bytes(["top secret"]))


def test_pdf_with_only_an_owner_password_opens(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["Readable by anyone."]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    doc = load("restricted.pdf", buffer.getvalue())
    assert "Readable by anyone." in doc.text


def test_corrupt_pdf_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadFile, match="not a readable PDF"):
        load("broken.pdf", corrupt_pdf_bytes())


def test_pdf_without_a_text_layer_asks_for_ocr(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(BadFile, match="OCR"):
        load("scan.pdf", buffer.getvalue())


# --- DOCX ----------------------------------------------------------------------------------------------


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Handbook", level=0)
    document.add_paragraph("Welcome aboard.")
    document.add_heading("Holidays", level=1)
    document.add_paragraph("You get 25 days.")
    document.add_heading("Public holidays", level=2)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Date", "Name"
    table.cell(1, 0).text, table.cell(1, 1).text = "1 May", "Labour Day"
    document.add_heading("Expenses", level=1)
    document.add_paragraph("Keep receipts.")
    path = tmp_path / "handbook.docx"
    document.save(str(path))

    doc = load("handbook.docx", path.read_bytes())

    assert_sections_well_formed(doc)
    texts = section_texts(doc)
    assert list(texts) == [
        ("Handbook",),
        ("Handbook", "Holidays"),
        ("Handbook", "Holidays", "Public holidays"),
        ("Handbook", "Expenses"),
    ]
    assert texts[("Handbook", "Holidays", "Public holidays")].endswith("Date | Name\n\n1 May | Labour Day")
    assert doc.title == "Handbook"


def test_corrupt_docx_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadFile, match=r"not a readable \.docx"):
        load("broken.docx", b"PK\x03\x04 this is no zip archive" * 10)


def test_password_protected_docx_is_refused(tmp_path: Path) -> None:
    ole_container = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    with pytest.raises(BadFile, match="password-protected"):
        load("locked.docx", ole_container)


def test_the_upload_pickers_accept_list_is_what_the_loaders_read() -> None:
    """The web UI refuses, per file, what its file picker does not accept; the server refuses the rest."""
    page = (Path(ragchat.__file__).parent / "web" / "static" / "index.html").read_text()
    (accept,) = re.findall(r'id="file-input"[^>]*accept="([^"]+)"', page)
    assert tuple(accept.split(",")) == SUPPORTED_SUFFIXES
