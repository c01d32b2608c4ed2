"""Reads one uploaded file out of a streamed multipart/form-data body, never past the limit.

Starlette's own form parsing spools the whole body before the handler runs; a certificate photo
must be refused as soon as it passes 3 MB, so the body is parsed here chunk by chunk with
python-multipart's push parser and the read stops at the first byte over the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from media_service.domain.errors import MultipartInvalid, PhotoFileMissing, PhotoTooLarge

FILE_FIELD = "file"
MAX_OTHER_BYTES = 16 * 1024  # headers and small fields beside the file, all together
MAX_PARTS = 8
MAX_BOUNDARY = 200  # RFC 2046 allows 70; leave room for odd clients


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """The file part of an upload: the bytes as sent, and what the client claimed about them."""

    data: bytes
    filename: str | None
    declared_type: str | None


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None
    is_file_field: bool = False


class _Collector:
    """Callbacks of the push parser: keep the file field's bytes, count everything else."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts = 0
        self.other_bytes = 0
        self.file: bytearray | None = None
        self.file_meta: _Part | None = None
        self.finished = False
        self._part = _Part()
        self._header_field = bytearray()
        self._header_value = bytearray()

    def _count_other(self, size: int) -> None:
        self.other_bytes += size
        if self.other_bytes > MAX_OTHER_BYTES:
            raise MultipartInvalid(f"more than {MAX_OTHER_BYTES} bytes outside the file part")

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise MultipartInvalid(f"more than {MAX_PARTS} parts")
        self._part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_other(end - start)
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_other(end - start)
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        # latin-1 keeps every byte as one character, so parse_options_header can round-trip
        # them; names and filenames are decoded as UTF-8 (what browsers send) afterwards.
        value = self._header_value.decode("latin-1").strip()
        self._part.headers[name] = value
        self._header_field.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._part.headers.get("content-disposition"))
        if disposition != b"form-data":
            raise MultipartInvalid("a part without Content-Disposition: form-data")
        raw_name = options.get(b"name")
        if raw_name is None:
            raise MultipartInvalid("a part without a name")
        self._part.name = raw_name.decode("utf-8", errors="replace")
        raw_filename = options.get(b"filename")
        if raw_filename is not None:
            self._part.filename = raw_filename.decode("utf-8", errors="replace")[:255]
        # A file part carries a filename (RFC 7578 §4.2); a plain field named "file" is not one.
        if self._part.name == FILE_FIELD and self._part.filename is not None:
            if self.file is not None:
                raise MultipartInvalid("more than one part named 'file'")
            self._part.is_file_field = True
            self.file = bytearray()
            self.file_meta = self._part

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if self._part.is_file_field:
            assert self.file is not None
            if len(self.file) + size > self.limit:
                # The photo is over the limit: report it without reading the rest of the body.
                raise PhotoTooLarge(len(self.file) + size, self.limit)
            self.file += data[start:end]
        else:
            self._count_other(size)

    def on_part_end(self) -> None:
        return None

    def on_end(self) -> None:
        self.finished = True


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary of a Content-Type header, or `MultipartInvalid`."""
    if not content_type:
        raise MultipartInvalid("no Content-Type; expected multipart/form-data")
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        raise MultipartInvalid(f"Content-Type is {media_type!r}, expected multipart/form-data")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > MAX_BOUNDARY:
        raise MultipartInvalid("multipart/form-data without a usable boundary")
    return boundary


async def read_file_part(
    content_type: str | None, chunks: AsyncIterator[bytes], limit: int
) -> UploadedFile:
    """The `file` part of a multipart body, read chunk by chunk and refused once over `limit`.

    Raises `MultipartInvalid` (400) for a body that is not a well-formed form, `PhotoFileMissing`
    (422) for a form without a file, `PhotoTooLarge` (413) as soon as the file passes `limit`.
    """
    collector = _Collector(limit)
    parser = MultipartParser(
        boundary_of(content_type),
        {
            "on_part_begin": collector.on_part_begin,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_end": collector.on_end,
        },
    )
    try:
        async for chunk in chunks:
            if chunk:
                parser.write(chunk)
            if collector.finished:
                break
        parser.finalize()
    except MultipartParseError as exc:
        raise MultipartInvalid(f"malformed multipart body: {exc}") from exc
    if not collector.finished:
        raise MultipartInvalid("the multipart body ends before its closing boundary")
    if collector.file is None or collector.file_meta is None:
        raise PhotoFileMissing()
    if not collector.file and not collector.file_meta.filename:
        # What a browser sends for a file input left empty: filename="" and no bytes.
        raise PhotoFileMissing("the file input was left empty")
    meta = collector.file_meta
    return UploadedFile(
        data=bytes(collector.file),
        filename=meta.filename,
        declared_type=meta.headers.get("content-type"),
    )
