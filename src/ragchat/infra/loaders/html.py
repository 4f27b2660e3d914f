"""HTML pages: the main content's text, sectioned by h1-h6 (and by Sphinx API entries).

lxml parses the page (fast, tolerant of broken markup, honours `<meta charset>`). The main content is the
first of `[role=main]`, `<main>`, `<article>`, `<body>`; navigation, sidebars, headers, footers, forms and
scripts are dropped. Block elements become blocks of the text; `<pre>` keeps its line breaks so code stays
readable. A Sphinx API entry (`<dt class="sig-object" id="json.dumps">`) opens a section below the current
heading, so a chunk about `json.dumps` carries the heading path `json ... > Basic Usage > json.dumps`.
"""

from __future__ import annotations

from typing import Any

from ragchat.domain import ExtractedDocument
from ragchat.infra.loaders import BadFile, ParseLimits
from ragchat.infra.loaders._builder import DocumentBuilder, collapse_whitespace
from ragchat.infra.loaders.containers import check_tree

_DROPPED_TAGS = frozenset(
    {
        "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
        "iframe", "svg", "button", "select", "textarea", "object", "embed", "canvas", "map", "head",
    }
)  # fmt: skip
_DROPPED_CLASSES = frozenset(
    {"headerlink", "sphinxsidebar", "related", "footer", "mobile-nav", "menu-wrapper", "navigation"}
)
_DROPPED_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "blockquote", "body", "caption", "center", "dd", "details", "dialog", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "hr", "li", "main", "ol", "p", "section",
        "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_HEADING_LEVELS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_API_HEADING_BASE_LEVEL = 6  # API entries nest below h6, so any later hN closes them
_API_TITLE_LIMIT = 80


def load_html(name: str, data: bytes, limits: ParseLimits) -> ExtractedDocument:
    """Extract the main content of an HTML page into text and sections (the tree checked against `limits`)."""
    from lxml import etree, html

    if not data.strip():
        raise BadFile(f"{name} is empty: there is no text to index")
    if b"\x00" in data[:65536]:
        raise BadFile(f"{name} looks like binary data, not HTML (it contains NUL bytes)")
    try:
        data.decode("utf-8")
        encoding: str | None = "utf-8"
    except UnicodeDecodeError:
        encoding = None  # let lxml follow <meta charset> (or its latin-1 default)
    try:
        root = html.document_fromstring(data, parser=html.HTMLParser(encoding=encoding))
    except (etree.ParserError, ValueError) as exc:
        raise BadFile(f"{name} could not be parsed as HTML: {exc}") from None
    check_tree(name, root, limits)

    page_title = collapse_whitespace(root.findtext(".//title") or "") or None
    content = _main_content(root)
    _drop_boilerplate(content)
    builder = DocumentBuilder()
    _Walker(builder).visit(content)
    document = builder.build()
    if not document.text.strip():
        raise BadFile(f"{name} has no readable text in its main content")
    return ExtractedDocument(document.text, document.sections, document.title or page_title)


def _main_content(root: Any) -> Any:
    for query in ('.//*[@role="main"]', ".//main", ".//article", ".//body"):
        found = root.find(query)
        if found is not None:
            return found
    return root


def _drop_boilerplate(content: Any) -> None:
    doomed = []
    for element in content.iter():
        tag = element.tag
        if not isinstance(tag, str):  # comments and processing instructions
            doomed.append(element)
            continue
        classes = element.get("class")
        if (
            tag in _DROPPED_TAGS
            or element.get("role") in _DROPPED_ROLES
            or (classes and not _DROPPED_CLASSES.isdisjoint(classes.split()))
        ):
            doomed.append(element)
    for element in doomed:
        if element.getparent() is not None:
            element.drop_tree()  # keeps the element's tail text


def _api_title(term: Any) -> str | None:
    """The short name of a Sphinx API entry (`json.dumps`), or None for an ordinary <dt>."""
    classes = (term.get("class") or "").split()
    if "sig-object" not in classes:
        return None
    identifier = term.get("id")
    if not identifier:
        return None  # a second signature of the same entry
    if "py" in classes or "c" in classes:
        return str(identifier).removeprefix("c.")
    signature = collapse_whitespace(term.text_content()).split("(", 1)[0].strip()
    return signature[:_API_TITLE_LIMIT] or str(identifier)


class _Walker:
    """Depth-first walk that turns elements into builder blocks and headings."""

    def __init__(self, builder: DocumentBuilder) -> None:
        self._builder = builder
        self._inline: list[str] = []
        self._api_depth = 0

    def visit(self, element: Any) -> None:
        tag = element.tag
        if tag in _HEADING_LEVELS:
            self._flush()
            self._builder.heading(_HEADING_LEVELS[tag], element.text_content())
        elif tag == "pre":
            self._flush()
            self._builder.block(element.text_content().rstrip())
        elif tag == "dt" and self._api_depth and (title := _api_title(element)) is not None:
            self._flush()
            self._builder.heading(_API_HEADING_BASE_LEVEL + self._api_depth, title)
            self._visit_children(element)
            self._flush()
        elif tag == "dl" and _is_api_entry(element):
            self._flush()
            self._api_depth += 1
            self._visit_children(element)
            self._flush()
            self._builder.close_headings(_API_HEADING_BASE_LEVEL + self._api_depth)
            self._api_depth -= 1
        elif tag in _BLOCK_TAGS:
            self._flush()
            self._visit_children(element)
            self._flush()
        elif tag == "br":
            self._inline.append("\n")
        else:
            self._visit_children(element)
        if element.tail:
            self._inline.append(element.tail)

    def _visit_children(self, element: Any) -> None:
        if element.text:
            self._inline.append(element.text)
        for child in element:
            self.visit(child)

    def _flush(self) -> None:
        if self._inline:
            self._builder.block(collapse_whitespace("".join(self._inline)))
            self._inline.clear()


def _is_api_entry(element: Any) -> bool:
    for child in element:
        if child.tag == "dt":
            return "sig-object" in (child.get("class") or "").split()
    return False
