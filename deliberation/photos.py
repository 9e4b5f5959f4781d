"""Photos residents upload (a broken lamp, a finished repair): checked by content, never
by file name, and re-encoded before anything is stored.

Re-encoding drops EXIF (GPS position, camera, time), text chunks, colour profiles and
anything appended after the image data; EXIF orientation is applied first so the photo
stays upright. The output keeps the input's format: JPEG, PNG or WebP.

Limits are checked before decoding: MAX_BYTES on the upload, MAX_PIXELS on the size the
header declares. Pillow's own decompression-bomb guard is kept strict (its warning is an
error here) without touching the global Image.MAX_IMAGE_PIXELS.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from dataclasses import dataclass
from enum import StrEnum
from io import BytesIO

from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000
JPEG_QUALITY = 85
WEBP_QUALITY = 85
MAX_NAME_CHARS = 100
FALLBACK_NAME = "photo"

BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)
PATH_SEPARATORS = re.compile(r"[/\\]")
INVISIBLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


class Refusal(StrEnum):
    TOO_LARGE = "too_large"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_TYPE = "unsupported_type"
    TOO_MANY_PIXELS = "too_many_pixels"
    CORRUPT = "corrupt"


class PhotoRefused(ValueError):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(f"photo refused: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class PhotoInfo:
    format: str
    mime: str
    extension: str
    width: int
    height: int


@dataclass(frozen=True)
class PreparedPhoto:
    """Re-encoded photo and thumbnail, both in `info.format`; width and height are the
    re-encoded photo's, `info` describes the upload."""

    info: PhotoInfo
    image_bytes: bytes
    thumb_bytes: bytes
    width: int
    height: int


def _starts_like_allowed(data: bytes) -> bool:
    return data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")) or (
        data.startswith(b"RIFF") and data[8:12] == b"WEBP"
    )


def _is_other_image(data: bytes) -> bool:
    """Whether Pillow recognises the data as some image format outside ALLOWED."""
    try:
        with Image.open(BytesIO(data)):
            return True
    except BOMB:
        return True
    except Exception:
        return False


def _header(data: bytes) -> PhotoInfo:
    """Reads the header only: type and declared size, then Pillow's structural verify()."""
    if len(data) > MAX_BYTES:
        raise PhotoRefused(Refusal.TOO_LARGE)
    try:
        image = Image.open(BytesIO(data), formats=list(ALLOWED))
    except UnidentifiedImageError:
        if _starts_like_allowed(data):
            raise PhotoRefused(Refusal.CORRUPT) from None
        refusal = Refusal.UNSUPPORTED_TYPE if _is_other_image(data) else Refusal.NOT_AN_IMAGE
        raise PhotoRefused(refusal) from None
    with image:
        # Phones write multi-picture JPEGs (MPO); the first picture is an ordinary JPEG.
        format = "JPEG" if image.format == "MPO" else str(image.format)
        if format not in ALLOWED:
            raise PhotoRefused(Refusal.UNSUPPORTED_TYPE)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise PhotoRefused(Refusal.TOO_MANY_PIXELS)
        image.verify()
    mime, extension = ALLOWED[format]
    return PhotoInfo(format, mime, extension, width, height)


def _decoded(data: bytes, draft_side: int) -> tuple[PhotoInfo, Image.Image]:
    """The checked header and the first frame, fully decoded (JPEGs at the smallest scale
    still at least draft_side on each side)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            info = _header(data)
            image = Image.open(BytesIO(data), formats=[info.format])
            if info.format == "JPEG":
                image.draft("RGB", (draft_side, draft_side))
            image.load()
        except PhotoRefused:
            raise
        except BOMB:
            raise PhotoRefused(Refusal.TOO_MANY_PIXELS) from None
        except Exception as error:  # Pillow reports damage through many exception types
            raise PhotoRefused(Refusal.CORRUPT) from error
    return info, image


def check_photo(data: bytes) -> PhotoInfo:
    info, image = _decoded(data, draft_side=1)
    image.close()
    return info


def _for_output(image: Image.Image, format: str) -> Image.Image:
    """A mode the output format stores well (JPEG: alpha flattened on white), without any
    of the upload's metadata."""
    if image.mode.startswith("I"):  # 16-bit grey: scale down rather than clip to white
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if format == "JPEG" and image.has_transparency_data:
        white = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    elif image.has_transparency_data:
        image = image if image.mode in ("RGBA", "LA") else image.convert("RGBA")
    elif image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.info.clear()  # EXIF, XMP, colour profile, text chunks, transparency key
    return image


def _encoded(image: Image.Image, format: str) -> bytes:
    output = BytesIO()
    if format == "JPEG":
        image.save(output, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif format == "WEBP":
        image.save(output, "WEBP", quality=WEBP_QUALITY)
    else:
        image.save(output, "PNG")
    return output.getvalue()


def prepare_photo(data: bytes, max_side: int = 1600, thumb_side: int = 320) -> PreparedPhoto:
    if max_side < 1 or thumb_side < 1:
        raise ValueError("sides must be at least one pixel")
    info, decoded = _decoded(data, draft_side=max_side)
    try:
        with decoded:
            upright = ImageOps.exif_transpose(decoded)
        photo = _for_output(upright, info.format)
        photo.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        thumb = photo.copy()
        thumb.thumbnail((thumb_side, thumb_side), Image.Resampling.LANCZOS)
    except Exception as error:  # a damaged EXIF block, for one
        raise PhotoRefused(Refusal.CORRUPT) from error
    return PreparedPhoto(
        info=info,
        image_bytes=_encoded(photo, info.format),
        thumb_bytes=_encoded(thumb, info.format),
        width=photo.width,
        height=photo.height,
    )


def safe_display_name(filename: str) -> str:
    """The uploaded file's name for display only (shown escaped, never used as a path):
    last path part, NFKC, without control, bidi and zero-width characters, at most
    MAX_NAME_CHARS characters with the extension kept."""
    name = unicodedata.normalize("NFKC", filename)
    name = PATH_SEPARATORS.split(name)[-1]
    name = " ".join(  # whitespace of any kind, controls included, becomes one space
        "".join(
            character
            for character in name
            if character.isspace() or unicodedata.category(character) not in INVISIBLE_CATEGORIES
        ).split()
    )
    if not name.strip("."):
        return FALLBACK_NAME
    if len(name) > MAX_NAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and 0 < len(extension) <= 10:
            name = stem[: MAX_NAME_CHARS - len(extension) - 1].rstrip() + "." + extension
        else:
            name = name[:MAX_NAME_CHARS].rstrip()
    return name
