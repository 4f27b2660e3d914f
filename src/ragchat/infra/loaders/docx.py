"""Word .docx files with python-docx: paragraphs and tables in body order; paragraphs styled `Title`
or `Heading N` open sections. Old binary `.doc` files and password-protected documents (which Word stores
as an encrypted OLE container, not a ZIP package) are refused with a hint.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

from ragchat.domain import ExtractedDocument
from ragchat.infra.loaders import BadFile
from ragchat.infra.loaders._builder import DocumentBuilder, collapse_whitespace

_HEADING_STYLE = re.compile(r"heading\s*(\d)", re.IGNORECASE)
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def load_docx(path: Path) -> ExtractedDocument:
    """Extract paragraphs (headings included) and table rows."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    name = path.name
    with path.open("rb") as file:
        signature = file.read(8)
    if not signature:
        raise BadFile(f"{name} is empty: there is no text to index")
    if signature == _OLE_SIGNATURE:
        raise BadFile(
            f"{name} is password-protected or an old binary Word file, not a .docx package; "
            "remove the password or save it as .docx and ingest it again"
        )
    try:
        document = docx.Document(str(path))
        builder = DocumentBuilder()
        for item in document.iter_inner_content():
            _add_item(builder, item)
        core_title = document.core_properties.title
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BadFile(f"{name} is not a readable .docx file (corrupt or truncated?): {exc}") from None
    extracted = builder.build(title=collapse_whitespace(core_title or "") or None)
    if not extracted.text.strip():
        raise BadFile(f"{name} contains no text")
    return extracted


def _add_item(builder: DocumentBuilder, item: Any) -> None:
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
    style_name = (item.style.name if item.style is not None else "") or ""
    text = item.text
    if style_name == "Title":
        builder.heading(1, text)
    elif match := _HEADING_STYLE.match(style_name):
        builder.heading(int(match.group(1)) + 1, text)  # below a Title
    else:
        builder.block(text.strip())
