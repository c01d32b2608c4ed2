"""The streamed multipart reader: the file part out, bad forms refused, the read stopped at 3 MB."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from media_service.adapters.multipart import MAX_OTHER_BYTES, read_file_part
from media_service.domain.errors import MultipartInvalid, PhotoFileMissing, PhotoTooLarge

pytestmark = pytest.mark.unit

BOUNDARY = "----zikaoTestBoundary7MA4YWxkTrZu0gW"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, data: bytes, filename: str | None = None, ctype: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode() + b"\r\n" + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


class Chunks:
    """An async body stream that counts how much of it was pulled."""

    def __init__(self, data: bytes, size: int = 64 * 1024) -> None:
        self.pieces = [data[i : i + size] for i in range(0, len(data), size)]
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.pulled += 1
            yield piece


async def read(data: bytes, limit: int = 1000, content_type: str | None = CONTENT_TYPE) -> bytes:
    uploaded = await read_file_part(content_type, aiter(Chunks(data)), limit)
    return uploaded.data


async def test_the_file_part_is_read_with_its_name_and_declared_type() -> None:
    data = body(part("note", b"hello"), part("file", b"\xff\xd8\xffabc", "证书.jpg", "image/jpeg"))
    uploaded = await read_file_part(CONTENT_TYPE, aiter(Chunks(data, 7)), 1000)
    assert uploaded.data == b"\xff\xd8\xffabc"
    assert uploaded.filename == "证书.jpg"
    assert uploaded.declared_type == "image/jpeg"


async def test_a_file_of_exactly_the_limit_is_read_whole() -> None:
    assert await read(body(part("file", b"x" * 1000, "a.jpg"))) == b"x" * 1000


async def test_one_byte_over_the_limit_stops_the_read_early() -> None:
    chunks = Chunks(body(part("file", b"x" * 3_000_000, "a.jpg")), size=1000)
    with pytest.raises(PhotoTooLarge) as caught:
        await read_file_part(CONTENT_TYPE, aiter(chunks), 5000)
    assert caught.value.status == 413
    assert chunks.pulled <= 7  # of 3001 chunks: the rest was never read


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "image/jpeg",
        "multipart/form-data",  # no boundary
        "multipart/form-data; boundary=",
        "multipart/mixed; boundary=" + BOUNDARY,
        "multipart/form-data; boundary=" + "b" * 201,
    ],
)
async def test_anything_but_multipart_form_data_with_a_boundary_is_refused(
    content_type: str | None,
) -> None:
    with pytest.raises(MultipartInvalid) as caught:
        await read(body(part("file", b"abc")), content_type=content_type)
    assert (caught.value.code, caught.value.status) == ("media.multipart_invalid", 400)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty body"),
        pytest.param(b"just some bytes, no boundary at all", id="no boundary"),
        pytest.param(part("file", b"abc", "a.jpg"), id="no closing boundary"),
        pytest.param(body(part("file", b"abc"))[:-20], id="cut in the middle"),
        pytest.param(
            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\nabc\r\n--{BOUNDARY}--\r\n".encode(),
            id="no content-disposition",
        ),
        pytest.param(
            (
                f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--{BOUNDARY}--\r\n"
            ).encode(),
            id="no name",
        ),
        pytest.param(
            body(part("file", b"one", "a.jpg"), part("file", b"two", "b.jpg")), id="two files"
        ),
        pytest.param(body(*(part(f"f{i}", b"x") for i in range(9))), id="too many parts"),
        pytest.param(body(part("note", b"x" * (MAX_OTHER_BYTES + 1))), id="huge side field"),
        pytest.param(
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=file\r\nX-Pad: {'p' * 5000}"
            f"\r\n\r\nabc\r\n--{BOUNDARY}--\r\n".encode(),
            id="huge header",
        ),
    ],
)
async def test_malformed_forms_are_refused(data: bytes) -> None:
    with pytest.raises(MultipartInvalid):
        await read(data)


async def test_a_form_without_a_file_part_says_so() -> None:
    with pytest.raises(PhotoFileMissing) as caught:
        await read(body(part("photo", b"abc", "a.jpg")))
    assert (caught.value.code, caught.value.status) == ("media.file_missing", 422)


async def test_an_empty_file_part_is_read_as_empty() -> None:
    assert await read(body(part("file", b"", "a.jpg"))) == b""
