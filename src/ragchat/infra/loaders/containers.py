"""Cheap checks of a file's container before it is parsed, so that a small file cannot make a parser
inflate gigabytes, walk millions of elements or expand nested entities.

- ZIP (`.docx`): the declared uncompressed size of each entry and of all together, and each entry's
  compression ratio (for entries over 1 MB), read from the central directory without inflating anything.
  Python's `zipfile` stops an entry at its declared size (a lying entry fails its CRC), so the declared
  sizes bound what a parser can read.
- XML parts of a ZIP: streamed through lxml without resolving entities or loading DTDs; a DTD (where
  entity definitions live, and which Word never writes) is refused, as are malformed XML and trees over the
  element or depth limit. Finished elements are freed as the stream goes, so memory stays flat.
- PDF: every stream of the file is inflated once, in 1 MB steps that are counted and dropped, up to the
  limit per stream and in all. (pypdf also caps what it inflates per stream; the other filters are left to
  those caps.)
- HTML trees: element count and depth, once lxml has parsed the page (its HTML parser expands no entities).
"""

from __future__ import annotations

import re
import zipfile
import zlib
from typing import IO, Any

from ragchat.infra.loaders import BadFile, OverLimit, ParseLimits

_MB = 1024 * 1024
_RATIO_GRACE_BYTES = _MB  # small entries may compress well (empty paragraphs do) without harm
_INFLATE_STEP = _MB
_PDF_STREAM = re.compile(rb"(?<!end)stream\r?\n")


def _mb(size: float) -> str:
    return f"{size / _MB:,.0f} MB" if size >= _MB else f"{size / _MB:.1f} MB"


def check_zip(name: str, archive: zipfile.ZipFile, limits: ParseLimits) -> None:
    """Raise `OverLimit` if an entry of `archive` (the file `name`) or all of them inflate too far."""
    total = 0
    for info in archive.infolist():
        if info.file_size > limits.max_part_bytes:
            raise OverLimit(
                f"{name}: its part {info.filename} inflates to {_mb(info.file_size)}, over the "
                f"{_mb(limits.max_part_bytes)} limit per part (RAGCHAT_MAX_PART_MB)"
            )
        if info.file_size > _RATIO_GRACE_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_compression_ratio:
                raise OverLimit(
                    f"{name}: its part {info.filename} is compressed {ratio:,.0f} times, over the limit of "
                    f"{limits.max_compression_ratio:g} (RAGCHAT_MAX_COMPRESSION_RATIO); a ZIP bomb?"
                )
        total += info.file_size
        if total > limits.max_uncompressed_bytes:
            raise OverLimit(
                f"{name} inflates to more than {_mb(limits.max_uncompressed_bytes)} in all, over the limit "
                "(RAGCHAT_MAX_UNCOMPRESSED_MB)"
            )


def check_xml_parts(name: str, archive: zipfile.ZipFile, limits: ParseLimits) -> None:
    """Stream every XML part of `archive`: no DTD, well-formed, within the element and depth limits."""
    from lxml import etree

    elements = 0
    for info in archive.infolist():
        if not info.filename.endswith((".xml", ".rels")):
            continue
        with archive.open(info) as stream:
            try:
                elements = _check_xml_stream(name, info.filename, stream, limits, elements)
            except etree.XMLSyntaxError as exc:
                raise BadFile(
                    f"{name} is not a readable file: malformed XML in {info.filename} ({exc})"
                ) from None


def _check_xml_stream(name: str, part: str, stream: IO[bytes], limits: ParseLimits, elements: int) -> int:
    from lxml import etree

    depth = 0
    events = etree.iterparse(
        stream, events=("start", "end"), resolve_entities=False, load_dtd=False, no_network=True
    )
    for event, element in events:
        if event == "end":
            depth -= 1
            element.clear()
            while element.getprevious() is not None:
                del element.getparent()[0]
            continue
        if depth == 0 and element.getroottree().docinfo.internalDTD is not None:
            raise BadFile(
                f"{name}: its part {part} declares a DTD (entity definitions, which Word never writes); "
                "the file is refused"
            )
        depth += 1
        elements += 1
        _check_size(name, elements, depth, limits)
    return elements


def check_tree(name: str, root: Any, limits: ParseLimits) -> None:
    """Raise `OverLimit` if the parsed tree `root` has too many elements or nests them too deep."""
    elements = 0
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        elements += 1
        _check_size(name, elements, depth, limits)
        stack.extend((child, depth + 1) for child in element)


def _check_size(name: str, elements: int, depth: int, limits: ParseLimits) -> None:
    if elements > limits.max_xml_elements:
        raise OverLimit(
            f"{name} has more than {limits.max_xml_elements:,} elements, over the limit "
            "(RAGCHAT_MAX_XML_ELEMENTS)"
        )
    if depth > limits.max_xml_depth:
        raise OverLimit(
            f"{name} nests elements more than {limits.max_xml_depth} levels deep, over the limit "
            "(RAGCHAT_MAX_XML_DEPTH)"
        )


def check_pdf_streams(name: str, data: bytes, limits: ParseLimits) -> None:
    """Raise `OverLimit` if a Flate stream of the PDF `data` (or all together) inflates past the limits."""
    total = 0
    for match in _PDF_STREAM.finditer(data):
        end = data.find(b"endstream", match.end())
        size = _inflated_size(
            memoryview(data)[match.end() : end if end >= 0 else len(data)], limits.max_part_bytes
        )
        if size > limits.max_part_bytes:
            raise OverLimit(
                f"{name} has a stream that inflates to more than {_mb(limits.max_part_bytes)}, over the "
                "limit per stream (RAGCHAT_MAX_PART_MB)"
            )
        total += size
        if total > limits.max_uncompressed_bytes:
            raise OverLimit(
                f"{name}'s streams inflate to more than {_mb(limits.max_uncompressed_bytes)} in all, over "
                "the limit (RAGCHAT_MAX_UNCOMPRESSED_MB)"
            )


def _inflated_size(raw: memoryview, cap: int) -> int:
    """How many bytes the zlib stream `raw` inflates to, counted up to just past `cap` (0 if not zlib)."""
    inflater = zlib.decompressobj()
    size = 0
    pending: bytes | memoryview = raw
    try:
        while not inflater.eof and size <= cap:
            inflated = len(inflater.decompress(pending, _INFLATE_STEP))
            pending = inflater.unconsumed_tail
            if not inflated and not pending:
                break  # a truncated stream
            size += inflated
    except zlib.error:
        pass  # not Flate (an image, another filter) or damaged: pypdf judges it, within its own caps
    return size
