import struct
import warnings
import zlib
from io import BytesIO

import pytest
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from deliberation.photos import (
    MAX_BYTES,
    MAX_PIXELS,
    PhotoInfo,
    PhotoRefused,
    check_photo,
    prepare_photo,
    safe_display_name,
)


def encoded(image: Image.Image, format: str, **options) -> bytes:
    output = BytesIO()
    image.save(output, format, **options)
    return output.getvalue()


def photo(format: str, size=(600, 400), mode="RGB", color="steelblue", **options) -> bytes:
    return encoded(Image.new(mode, size, color), format, **options)


def opened(data: bytes) -> Image.Image:
    return Image.open(BytesIO(data))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header declaring the size, followed by image data that is not there."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"not really compressed pixels")
        + png_chunk(b"IEND", b"")
    )


def located_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Phone maker"
    exif[ExifTags.Base.Model] = "Phone 12"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (39.0, 54.0, 27.0),
            ExifTags.GPS.GPSLongitudeRef: "E",
            ExifTags.GPS.GPSLongitude: (116.0, 23.0, 50.0),
        }
    )
    return exif


def refusal(data: bytes) -> str:
    with pytest.raises(PhotoRefused) as refused:
        check_photo(data)
    return refused.value.reason


@pytest.mark.parametrize(
    "format, mime, extension",
    [("JPEG", "image/jpeg", "jpg"), ("PNG", "image/png", "png"), ("WEBP", "image/webp", "webp")],
)
def test_accepted_photo_is_described(format, mime, extension):
    assert check_photo(photo(format)) == PhotoInfo(format, mime, extension, 600, 400)


def test_type_comes_from_content_not_from_the_name():
    upload_name, content = "lamp.jpg", photo("PNG")

    assert check_photo(content).extension == "png"
    assert safe_display_name(upload_name) == "lamp.jpg"


def test_multi_picture_jpeg_from_a_phone_is_a_jpeg():
    second = Image.new("RGB", (600, 400), "red")
    content = photo("MPO", save_all=True, append_images=[second])

    assert opened(content).format == "MPO"
    assert check_photo(content).format == "JPEG"
    assert opened(prepare_photo(content).image_bytes).format == "JPEG"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"just some text, named lamp.jpg",
        b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>',
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF",
        b"PK\x03\x04" + b"\x00" * 100,
        b"\x89PN",
    ],
    ids=["empty", "text", "html", "svg", "pdf", "zip", "part-of-a-signature"],
)
def test_what_is_not_an_image_is_refused(content):
    assert refusal(content) == "not_an_image"


@pytest.mark.parametrize("format", ["GIF", "BMP", "TIFF", "ICO"])
def test_other_image_types_are_unsupported(format):
    assert refusal(photo(format, size=(32, 32))) == "unsupported_type"


def test_too_many_bytes_are_refused_before_looking_inside():
    assert refusal(b"\x00" * (MAX_BYTES + 1)) == "too_large"


def test_largest_allowed_upload_is_looked_at():
    assert refusal(b"\x00" * MAX_BYTES) == "not_an_image"


@pytest.mark.parametrize(
    "width, height",
    [
        (8000, 5001),  # just over MAX_PIXELS
        (10000, 10000),  # over Pillow's warning limit
        (50000, 50000),  # over Pillow's error limit
        (65535, 1000),
    ],
)
def test_declared_size_over_the_limit_is_refused_without_decoding(width, height):
    assert width * height > MAX_PIXELS
    # The pixel data is garbage: decoding would have said "corrupt".
    assert refusal(png_claiming(width, height)) == "too_many_pixels"


def test_real_decompression_bomb_is_refused():
    bomb = encoded(Image.new("1", (8000, 5001)), "PNG")

    assert len(bomb) < 10_000
    assert refusal(bomb) == "too_many_pixels"
    with pytest.raises(PhotoRefused):
        prepare_photo(bomb)


def test_pillow_limits_are_left_as_they_were():
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)

    refusal(png_claiming(10000, 10000))

    assert limit == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == filters


@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP"])
def test_truncated_photo_is_corrupt(format):
    content = encoded(Image.effect_noise((300, 200), 64).convert("RGB"), format)

    assert refusal(content[: len(content) * 2 // 3]) == "corrupt"


@pytest.mark.parametrize("where", [b"IHDR", b"IDAT"])
def test_png_with_a_damaged_chunk_is_corrupt(where):
    content = bytearray(photo("PNG"))
    content[content.index(where) + 6] ^= 0xFF

    assert refusal(bytes(content)) == "corrupt"


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xd8\xff",
        b"\xff\xd8\xff\xe0" + b"\x00" * 40,
        b"\x89PNG\r\n\x1a\n",
        b"RIFF\0\0\0\0WEBPVP8 ",
    ],
    ids=["jpeg", "jpeg-app0", "png", "webp"],
)
def test_photo_signature_without_a_photo_is_corrupt(content):
    assert refusal(content) == "corrupt"


def test_declared_size_without_pixel_data_is_corrupt():
    assert refusal(png_claiming(100, 100)) == "corrupt"


@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP"])
def test_prepared_photo_has_no_location_or_camera(format):
    content = photo(format, exif=located_exif())
    assert opened(content).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    prepared = prepare_photo(content)

    for output in (prepared.image_bytes, prepared.thumb_bytes):
        image = opened(output)
        assert not image.getexif()
        assert not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert "exif" not in image.info
        assert b"Phone 12" not in output


def test_prepared_photo_loses_text_profile_and_trailing_payload():
    info = PngInfo()
    info.add_text("Comment", "1-502 Zhang")
    content = photo("PNG", pnginfo=info, icc_profile=b"fake profile") + b"<script>PAYLOAD"

    output = prepare_photo(content).image_bytes

    assert b"Zhang" not in output
    assert b"PAYLOAD" not in output
    assert not opened(output).info


def test_orientation_is_applied_before_metadata_goes():
    exif = located_exif()
    exif[ExifTags.Base.Orientation] = 6  # camera held upright: rotate 90° to show
    content = photo("JPEG", size=(400, 200), exif=exif)

    prepared = prepare_photo(content)

    assert (prepared.width, prepared.height) == (200, 400)
    assert opened(prepared.image_bytes).size == (200, 400)


@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP"])
def test_output_keeps_the_format_the_info_names(format):
    prepared = prepare_photo(photo(format))

    assert prepared.info.format == format
    assert opened(prepared.image_bytes).format == format
    assert opened(prepared.thumb_bytes).format == format


@pytest.mark.parametrize(
    "size, photo_size, thumb_size",
    [
        ((3000, 2000), (1600, 1067), (320, 213)),
        ((1000, 4000), (400, 1600), (80, 320)),
        ((1600, 1600), (1600, 1600), (320, 320)),
        ((200, 100), (200, 100), (200, 100)),
    ],
)
def test_photo_and_thumbnail_fit_their_sides(size, photo_size, thumb_size):
    prepared = prepare_photo(photo("JPEG", size=size))

    assert (prepared.width, prepared.height) == photo_size
    assert opened(prepared.image_bytes).size == photo_size
    assert opened(prepared.thumb_bytes).size == thumb_size
    assert (prepared.info.width, prepared.info.height) == size


def test_sides_can_be_chosen():
    prepared = prepare_photo(photo("WEBP", size=(1000, 500)), max_side=500, thumb_side=100)

    assert opened(prepared.image_bytes).size == (500, 250)
    assert opened(prepared.thumb_bytes).size == (100, 50)


def test_transparent_png_stays_transparent():
    content = photo("PNG", mode="RGBA", color=(255, 0, 0, 0))

    output = opened(prepare_photo(content).image_bytes)

    assert output.mode == "RGBA"
    assert output.getpixel((0, 0))[3] == 0


def test_palette_png_with_transparency_keeps_it():
    image = Image.new("P", (100, 100), 0)
    image.putpalette([255, 0, 0, 0, 0, 255])
    content = encoded(image, "PNG", transparency=0)

    output = opened(prepare_photo(content).image_bytes)

    assert output.mode == "RGBA"
    assert output.getpixel((0, 0))[3] == 0


def test_cmyk_jpeg_becomes_rgb():
    output = opened(prepare_photo(photo("JPEG", mode="CMYK", color=(0, 255, 255, 0))).image_bytes)

    assert output.mode == "RGB"


def test_sixteen_bit_grey_png_keeps_its_tones():
    content = encoded(Image.new("I;16", (64, 64), 32768), "PNG")

    output = opened(prepare_photo(content).image_bytes)

    assert output.mode == "L"
    assert 120 <= output.getpixel((0, 0)) <= 135


def test_prepare_refuses_what_check_refuses():
    with pytest.raises(PhotoRefused) as refused:
        prepare_photo(b"<svg/>")

    assert refused.value.reason == "not_an_image"


@pytest.mark.parametrize(
    "filename, shown",
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\张三\\Pictures\\楼道灯.JPG", "楼道灯.JPG"),
        ("／etc／ｐａｓｓｗｄ", "passwd"),
        ("<script>alert(1)<\\script>.png", "script>.png"),
        ("photos/<script>alert(1).png", "<script>alert(1).png"),
        ("lamp\x00\x1b[31m.jpg", "lamp[31m.jpg"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("zero\u200bwidth\ufeff.png", "zerowidth.png"),
        ("line\nbreak\t tab.png", "line break tab.png"),
        ("  spaced  .png ", "spaced .png"),
        ("..", "photo"),
        ("", "photo"),
        ("dir/", "photo"),
        ("\u202e\u200b", "photo"),
    ],
)
def test_display_name_is_a_harmless_single_name(filename, shown):
    assert safe_display_name(filename) == shown


def test_long_display_name_keeps_its_extension():
    shown = safe_display_name("长" * 300 + ".jpeg")

    assert len(shown) == 100
    assert shown.endswith("长.jpeg")


def test_long_display_name_without_extension_is_cut():
    assert safe_display_name("x" * 300) == "x" * 100
