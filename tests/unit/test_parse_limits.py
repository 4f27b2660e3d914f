"""Container checks before parsing, and the parser pool's memory and time limits, on crafted files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ragchat.domain import ExtractedDocument
from ragchat.infra.loaders import BadFile, OverLimit, ParseLimits, UnsupportedFile, load_document
from ragchat.infra.parsing import ParserPool
from tests.support.sample_files import (
    docx_bomb,
    docx_bytes,
    docx_of_empty_paragraphs,
    docx_with_entities,
    docx_with_malformed_xml,
    pdf_bytes,
    pdf_with_flate_stream,
)

MB = 1024 * 1024


def test_a_zip_bomb_is_refused_from_its_declared_sizes() -> None:
    bomb = docx_bomb(1100 * MB)  # about 1 MB on disk
    with pytest.raises(OverLimit) as caught:
        load_document("bomb.docx", bomb)
    reason = str(caught.value)
    assert "bomb.docx" in reason and "word/document.xml" in reason and "RAGCHAT_MAX_PART_MB" in reason


def test_zip_total_size_and_compression_ratio_have_limits() -> None:
    bomb = docx_bomb(3 * MB)
    with pytest.raises(OverLimit, match="RAGCHAT_MAX_UNCOMPRESSED_MB"):
        load_document("a.docx", bomb, ParseLimits(max_uncompressed_bytes=2 * MB, max_compression_ratio=1e9))
    with pytest.raises(OverLimit, match="RAGCHAT_MAX_COMPRESSION_RATIO"):
        load_document("a.docx", bomb, ParseLimits(max_compression_ratio=100))


def test_many_empty_paragraphs_parse_quickly_and_keep_the_text() -> None:
    document = load_document("empty-paragraphs.docx", docx_of_empty_paragraphs(40_000, "The one sentence."))
    assert document.text == "The one sentence."


def test_nested_entity_definitions_are_refused_unexpanded() -> None:
    with pytest.raises(BadFile) as caught:
        load_document("laughs.docx", docx_with_entities())
    assert "laughs.docx" in str(caught.value) and "lol" not in str(caught.value)


def test_malformed_xml_is_a_bad_file() -> None:
    with pytest.raises(BadFile, match=r"malformed XML in word/document\.xml"):
        load_document("cut.docx", docx_with_malformed_xml())


def test_xml_element_count_and_depth_have_limits() -> None:
    many = docx_of_empty_paragraphs(2_000, "x")
    with pytest.raises(OverLimit, match="RAGCHAT_MAX_XML_ELEMENTS"):
        load_document("many.docx", many, ParseLimits(max_xml_elements=1_000))
    deep = "<html><body>" + "<div>" * 300 + "deep text" + "</div>" * 300 + "</body></html>"
    with pytest.raises(OverLimit, match="RAGCHAT_MAX_XML_DEPTH"):
        load_document("deep.html", deep.encode())
    wide = "<html><body>" + "<p>word</p>" * 3_000 + "</body></html>"
    with pytest.raises(OverLimit, match="RAGCHAT_MAX_XML_ELEMENTS"):
        load_document("wide.html", wide.encode(), ParseLimits(max_xml_elements=2_000))


def test_a_pdf_stream_that_inflates_too_far_is_refused_before_parsing() -> None:
    with pytest.raises(OverLimit, match="RAGCHAT_MAX_PART_MB") as caught:  # 200 MB: the HTTP test
        load_document("bomb.pdf", pdf_with_flate_stream(20 * MB), ParseLimits(max_part_bytes=10 * MB))
    assert "bomb.pdf" in str(caught.value)
    small = pdf_with_flate_stream(2 * MB, text="Compressed but fine.")
    assert "Compressed but fine." in load_document("fine.pdf", small).text
    with pytest.raises(OverLimit, match="RAGCHAT_MAX_UNCOMPRESSED_MB"):
        load_document("fine.pdf", small, ParseLimits(max_uncompressed_bytes=MB))


def test_pdf_pages_have_a_limit() -> None:
    with pytest.raises(OverLimit, match="RAGCHAT_MAX_PDF_PAGES"):
        load_document("one-page.pdf", pdf_bytes(["text"]), ParseLimits(max_pdf_pages=0))


# --- the pool ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[ParserPool]:
    parsers = ParserPool(ParseLimits(), workers=2, timeout_s=60, memory_mb=1024)
    yield parsers
    parsers.close()


def test_the_pool_parses_and_reports_reasons_as_the_loaders_do(pool: ParserPool) -> None:
    document = pool.parse("report.docx", docx_bytes("Report", ["Quarterly numbers went up."]))
    assert isinstance(document, ExtractedDocument) and "Quarterly numbers" in document.text
    with pytest.raises(UnsupportedFile, match="unsupported file type"):
        pool.parse("sheet.xlsx", b"PK")
    with pytest.raises(OverLimit, match="RAGCHAT_MAX_PART_MB"):
        pool.parse("bomb.docx", docx_bomb(1100 * MB))
    with pytest.raises(BadFile, match="empty"):
        pool.parse("empty.txt", b"")
    assert "Quarterly" in pool.parse("again.docx", docx_bytes("Report", ["Quarterly."])).text


def test_a_file_that_takes_too_long_is_stopped_and_the_worker_replaced() -> None:
    parsers = ParserPool(ParseLimits(), workers=1, timeout_s=0.5, memory_mb=1024)
    slow = ("<html><body>" + "<p>word</p>" * 1_000_000 + "</body></html>").encode()  # seconds of walking
    try:
        with pytest.raises(OverLimit) as caught:
            parsers.parse("slow.html", slow)
        assert "slow.html" in str(caught.value) and "RAGCHAT_PARSE_TIMEOUT_S" in str(caught.value)
        assert "fine" in parsers.parse("next.md", b"# Next\n\nfine").text
    finally:
        parsers.close()
