"""Reading multipart uploads as they stream in, with file-name checks and a per-file size limit.

Starlette's own form parser buffers a whole upload before the route sees it; this reader checks each
file's name as soon as its part headers arrive and stops reading (413) the moment a file grows past the
limit, so an oversized upload is refused without being stored.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import IO

import anyio.to_thread
from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ragchat.api.errors import ApiError
from ragchat.infra.loaders import SUPPORTED_SUFFIXES, UnsupportedFile, check_supported

_SPOOL_BYTES = 1024 * 1024
_MAX_FIELD_BYTES = 4096
_MAX_NAME_BYTES = 255
# Part content types that are never a document, whatever the file's name says.
_NOT_DOCUMENTS = (b"image/", b"audio/", b"video/", b"font/")


def check_upload_name(name: str) -> str:
    """`name` if it is a plain file name; else an `ApiError` (400) saying what is wrong with it.

    Names are never turned into paths as sent: folders (`../`, absolute paths, backslashes), empty names,
    `.`/`..` and control characters are refused, so an upload can only ever name itself.
    """
    if not name.strip():
        raise ApiError(
            400, "invalid_filename", "an uploaded file has an empty file name; give every file a name"
        )
    if "/" in name or "\\" in name:
        raise ApiError(
            400,
            "invalid_filename",
            f"file name {name!r} contains a folder path ('/' or '\\'); send a plain file name such as "
            f"{name.replace(chr(92), '/').rsplit('/', 1)[-1] or 'report.pdf'!r}",
        )
    if name in (".", ".."):
        raise ApiError(400, "invalid_filename", f"{name!r} is not a file name")
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise ApiError(400, "invalid_filename", f"file name {name!r} contains control characters")
    if len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        raise ApiError(400, "invalid_filename", f"file name is longer than {_MAX_NAME_BYTES} bytes")
    return name


def check_supported_upload(name: str, part_headers: dict[bytes, bytes]) -> str:
    """`name` if it is a plain file name of a type ragchat reads, judged from the part's headers alone
    (before its body is read): else an `ApiError`, 400 for the name, 415 with the supported types for the
    type (by the name's suffix, or a part `Content-Type` that is never a document such as image/png)."""
    check_upload_name(name)
    try:
        check_supported(name)
    except UnsupportedFile as exc:
        raise ApiError(415, "unsupported_file_type", f"{exc}; nothing from this request was stored") from None
    content_type, _ = parse_options_header(part_headers.get(b"content-type"))
    if content_type.startswith(_NOT_DOCUMENTS):
        raise ApiError(
            415,
            "unsupported_file_type",
            f"{name} was sent as {content_type.decode('latin-1')}, which is not a document; ragchat reads "
            f"{', '.join(SUPPORTED_SUFFIXES)}; nothing from this request was stored",
        )
    return name


@dataclass
class UploadedFile:
    """One uploaded file, spooled to memory (small) or a temporary file (large)."""

    filename: str
    size: int = 0
    content: IO[bytes] = field(default_factory=lambda: SpooledTemporaryFile(max_size=_SPOOL_BYTES))  # noqa: SIM115

    def read_all(self) -> bytes:
        """The whole file (blocking: call from a worker thread)."""
        self.content.seek(0)
        return self.content.read()


@dataclass
class UploadForm:
    """The files and plain fields of a multipart form."""

    files: list[UploadedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        for upload in self.files:
            upload.content.close()


@dataclass
class _Part:
    name: str = ""
    file: UploadedFile | None = None
    data: bytearray = field(default_factory=bytearray)


class _FormCollector:
    """python-multipart callbacks that fill an `UploadForm`, enforcing the limits as bytes arrive."""

    def __init__(self, *, file_field: str, max_file_bytes: int, max_files: int) -> None:
        self.form = UploadForm()
        self.pending: list[tuple[UploadedFile, bytes]] = []
        self._file_field = file_field
        self._max_file_bytes = max_file_bytes
        self._max_files = max_files
        self._part = _Part()
        self._headers: dict[bytes, bytes] = {}
        self._header_name = b""
        self._header_value = b""

    def on_part_begin(self) -> None:
        self._part = _Part()
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        if b"name" not in options:
            raise ApiError(
                400, "invalid_multipart", "a multipart part has no name in its Content-Disposition"
            )
        self._part.name = _decode(options[b"name"])
        if b"filename" not in options:
            if self._part.name == self._file_field:
                raise ApiError(400, "invalid_filename", f"a part of {self._file_field!r} has no file name")
            return
        if self._part.name != self._file_field:
            raise ApiError(
                400,
                "invalid_multipart",
                f"files go in the form field {self._file_field!r}, not {self._part.name!r}",
            )
        if len(self.form.files) >= self._max_files:
            raise ApiError(400, "too_many_files", f"send at most {self._max_files} files per request")
        upload = UploadedFile(check_supported_upload(_decode(options[b"filename"]), self._headers))
        self.form.files.append(upload)
        self._part.file = upload

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        upload = self._part.file
        if upload is None:
            if len(self._part.data) + end - start > _MAX_FIELD_BYTES:
                raise ApiError(400, "invalid_multipart", f"form field {self._part.name!r} is too long")
            self._part.data.extend(data[start:end])
            return
        upload.size += end - start
        if upload.size > self._max_file_bytes:
            raise ApiError(
                413,
                "file_too_large",
                f"{upload.filename} is larger than the {self._max_file_bytes / 1048576:g} MB limit per file "
                "(the server's RAGCHAT_MAX_FILE_MB); nothing from this request was stored",
            )
        self.pending.append((upload, data[start:end]))

    def on_part_end(self) -> None:
        if self._part.file is None and self._part.name:
            self.form.fields[self._part.name] = _decode(bytes(self._part.data))

    def write_pending(self) -> None:
        """Move received file bytes into the spooled files (blocking: call from a worker thread)."""
        for upload, data in self.pending:
            upload.content.write(data)
        self.pending.clear()


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


async def read_upload_form(
    request: Request, *, file_field: str = "files", max_file_bytes: int, max_files: int = 100
) -> UploadForm:
    """Parse the request's multipart body as it streams in; `ApiError` (400/413) on bad input.

    The caller owns the returned form and must `close()` it.
    """
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(
            400,
            "invalid_multipart",
            f"send the files as multipart/form-data in the field {file_field!r} "
            "(for example: curl -F files=@report.pdf ...)",
        )
    collector = _FormCollector(file_field=file_field, max_file_bytes=max_file_bytes, max_files=max_files)
    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": collector.on_part_begin,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if collector.pending:
                await anyio.to_thread.run_sync(collector.write_pending)
        parser.finalize()
    except FormParserError as exc:
        collector.form.close()
        raise ApiError(400, "invalid_multipart", f"the multipart body could not be parsed: {exc}") from None
    except BaseException:
        collector.form.close()
        raise
    return collector.form
