"""Word .docx files with python-docx: paragraphs and tables in body order; paragraphs styled `Title`
or `Heading N` open sections. Old binary `.doc` files and password-protected documents (which Word stores
as an encrypted OLE container, not a ZIP package) are refused with a hint. The package is checked against
`ParseLimits` (sizes, compression ratio, DTDs, element count and depth) before python-docx opens it.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from ragchat.domain import ExtractedDocument
from ragchat.infra.loaders import BadFile, ParseLimits
from ragchat.infra.loaders._builder import DocumentBuilder, collapse_whitespace
from ragchat.infra.loaders.containers import check_xml_parts, check_zip

_HEADING_STYLE = re.compile(r"heading\s*(\d)", re.IGNORECASE)
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def load_docx(name: str, data: bytes, limits: ParseLimits) -> ExtractedDocument:
    """Extract paragraphs (headings included) and table rows."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from lxml import etree

    if not data:
        raise BadFile(f"{name} is empty: there is no text to index")
    if data[:8] == _OLE_SIGNATURE:
        raise BadFile(
            f"{name} is password-protected or an old binary Word file, not a .docx package; "
            "remove the password or save it as .docx and ingest it again"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            check_zip(name, archive, limits)
            check_xml_parts(name, archive, limits)
        document = docx.Document(io.BytesIO(data))
        builder = DocumentBuilder()
        styles = _StyleNames()
        for item in document.iter_inner_content():
            _add_item(builder, styles, item)
        core_title = document.core_properties.title
    except (PackageNotFoundError, zipfile.BadZipFile, etree.XMLSyntaxError, KeyError, ValueError) as exc:
        raise BadFile(f"{name} is not a readable .docx file (corrupt or truncated?): {exc}") from None
    extracted = builder.build(title=collapse_whitespace(core_title or "") or None)
    if not extracted.text.strip():
        raise BadFile(f"{name} contains no text")
    return extracted


class _StyleNames:
    """Paragraph style names by style id: python-docx looks a style up in ~1 ms, so once per id."""

    def __init__(self) -> None:
        self._names: dict[str | None, str] = {}

    def of(self, paragraph: Any) -> str:
        style_id = paragraph._p.style  # the w:pStyle value, None for the default style
        if style_id not in self._names:
            style = paragraph.style
            self._names[style_id] = (style.name if style is not None else "") or ""
        return self._names[style_id]


def _add_item(builder: DocumentBuilder, styles: _StyleNames, item: Any) -> None:
    from docx.table import Table

    if isinstance(item, Table):
        for row in item.rows:
            cells: list[str] = []
            for cell in row.cells:
                text = collapse_whitespace(cell.text)
                if text and (not cells or cells[-1] != text):  # merged cells repeat their text
                    cells.append(text)
            builder.block(" | ".join(cells))
        return
    style_name = styles.of(item)
    text = item.text
    if style_name == "Title":
        builder.heading(1, text)
    elif match := _HEADING_STYLE.match(style_name):
        builder.heading(int(match.group(1)) + 1, text)  # below a Title
    else:
        builder.block(text.strip())
