"""Checks on what an image call is given, made before anything is sent.

An image that is not an image, a mask whose size differs from its image's, an output format
no provider writes: each is the caller's mistake, known locally, so it raises one
:class:`~failover.http.InvalidArgument` (a ``BadRequest``: the chain stops, no platform's
health is touched) naming the parameter. Sizes are read from the file headers of PNG, JPEG and
WebP; an image in another format passes with its size unknown, and the provider decides.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from failover._core import validate
from failover._core.errors import ConfigError
from failover.http._base import InvalidArgument

#: Output formats a caller may ask for; each adapter maps them onto what its API writes.
OUTPUT_FORMATS: Final = ("png", "jpeg", "webp")
#: Largest image accepted for upload (the providers' own limits are 10-50 MB).
MAX_IMAGE_BYTES: Final = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What an image's header says: its media type and, when readable, its size."""

    media_type: str
    width: int | None
    height: int | None

    @property
    def extension(self) -> str:
        return self.media_type.rpartition("/")[2]


def image_info(name: str, data: object) -> ImageInfo:
    """``data``'s type and size, or :class:`InvalidArgument` naming ``name``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgument(f"{name} must be the image's bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise InvalidArgument(f"{name} is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidArgument(f"{name} is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(data) >= 24 and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return ImageInfo("image/png", width, height)
        return ImageInfo("image/png", None, None)
    if data.startswith(b"\xff\xd8\xff"):
        return ImageInfo("image/jpeg", *_jpeg_size(data))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ImageInfo("image/webp", *_webp_size(data))
    raise InvalidArgument(
        f"{name} is not a PNG, JPEG or WebP image (its first bytes are not an image header)"
    )


def check_mask(image: ImageInfo, mask: ImageInfo) -> None:
    """A mask must cover its image exactly (every provider rejects other sizes)."""
    if None in (image.width, image.height, mask.width, mask.height):
        return
    if (image.width, image.height) != (mask.width, mask.height):
        raise InvalidArgument(
            f"mask is {mask.width}x{mask.height} but image is {image.width}x{image.height}; "
            "a mask must have its image's size"
        )


def check_output_format(output_format: object) -> str:
    """``output_format`` if it is one of :data:`OUTPUT_FORMATS`."""
    if output_format not in OUTPUT_FORMATS:
        raise InvalidArgument(
            f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}"
        )
    assert isinstance(output_format, str)
    return output_format


def check_prompt(prompt: object, *, required: bool = True) -> str:
    """A non-empty prompt string (or ``""`` where none is needed)."""
    if prompt is None and not required:
        return ""
    if not isinstance(prompt, str) or (required and not prompt.strip()):
        raise InvalidArgument(f"prompt must be a non-empty string, got {type(prompt).__name__}")
    return prompt


def check_size(width: object, height: object) -> None:
    """Optional pixel sizes: whole numbers from 64 to 4096."""
    for name, value in (("width", width), ("height", height)):
        if value is not None:
            try:
                validate.integer(name, value, at_least=64, at_most=4096, hint=" (pixels)")
            except ConfigError as exc:
                raise InvalidArgument(str(exc)) from None


def _jpeg_size(data: bytes) -> tuple[int | None, int | None]:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            index += 1
            continue
        marker = data[index + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        index += 2 + length
    return None, None


def _webp_size(data: bytes) -> tuple[int | None, int | None]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None, None
