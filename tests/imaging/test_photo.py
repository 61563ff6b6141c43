"""Tests for monitor.imaging.photo: every file is generated here, from skimage's astronaut."""

from __future__ import annotations

import functools
import io
import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms
from skimage import data

import monitor.imaging.photo
from monitor.errors import MonitorError, PhotoTooLarge, PhotoTooSmall, UnreadablePhoto
from monitor.imaging import MAX_PIXELS, MIN_SIDE_PX, Photo, load_photo

# Non-square, so that a wrong rotation changes the shape and not only the content.
SOURCE = np.ascontiguousarray(data.astronaut()[:, 56:456])  # (512, 400, 3) uint8
GREY = np.ascontiguousarray(data.astronaut()[:, 56:456, 1])  # (512, 400) uint8
LOSSY_PSNR_DB = 35.0

EXIF_IFD = 0x8769
GPS_IFD = 0x8825


# --- builders ------------------------------------------------------------------------------


def encode(image: Image.Image | np.ndarray, fmt: str, **options) -> bytes:
    """Encode with Pillow (HEIF through pillow-heif, registered by monitor.imaging.photo)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def exif_bytes(
    *,
    orientation: int | None = None,
    taken: str | None = None,
    offset: str | None = None,
    subseconds: str | None = None,
    camera: bool = False,
    gps: bool = False,
) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if camera:
        exif[271] = "Apple"
        exif[272] = "iPhone 15 Pro"
        exif[305] = "17.4.1"
        exif[270] = "Kitchen at 12 Rose Street"  # ImageDescription: not on the allow-list
        exif[315] = "Jane Doe"  # Artist: not on the allow-list
    exif_ifd = exif.get_ifd(EXIF_IFD)
    if taken is not None:
        exif_ifd[36867] = taken
    if offset is not None:
        exif_ifd[36881] = offset
    if subseconds is not None:
        exif_ifd[37521] = subseconds
    if gps:
        gps_ifd = exif.get_ifd(GPS_IFD)
        gps_ifd[1] = "N"
        gps_ifd[2] = (51.0, 30.0, 26.46)
        gps_ifd[3] = "W"
        gps_ifd[4] = (0.0, 7.0, 39.93)
        gps_ifd[29] = "2024:03:05"
    return exif.tobytes()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int, *, full_data: bool = False) -> bytes:
    """An 8-bit RGB PNG whose header claims width x height, without building the image.

    With ``full_data`` the IDAT holds every (black) row, compressed about 1000:1: a real
    decompression bomb. Otherwise it holds a few bytes only.
    """
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    compressor = zlib.compressobj(9)
    if full_data:
        row = bytes(1 + 3 * width)
        rows_per_feed = max(1, 4_000_000 // len(row))
        parts = []
        for start in range(0, height, rows_per_feed):
            parts.append(compressor.compress(row * min(rows_per_feed, height - start)))
        parts.append(compressor.flush())
        idat = b"".join(parts)
    else:
        idat = zlib.compress(bytes(1000))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


# Display P3: the P3 primaries, a D65 white and the sRGB tone curve. Pillow can only create
# sRGB/LAB/XYZ profiles, so we write this small ICC v4 matrix/TRC profile by hand.
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
SRGB_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
D65 = (0.3127, 0.3290)
D50_XYZ = np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)
P3_DESCRIPTION = "Display P3 (test)"


def xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_matrix(primaries, white) -> np.ndarray:
    columns = np.stack([xy_to_xyz(*p) for p in primaries], axis=1)
    return columns * np.linalg.solve(columns, xy_to_xyz(*white))


def icc_profile(primaries, *, description: str) -> bytes:
    def s15(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(values) -> bytes:
        return b"XYZ " + bytes(4) + b"".join(s15(v) for v in values)

    def mluc(text: str) -> bytes:
        encoded = text.encode("utf-16-be")
        return (
            b"mluc"
            + bytes(4)
            + struct.pack(">II", 1, 12)
            + b"enUS"
            + struct.pack(">II", len(encoded), 28)
            + encoded
        )

    w65 = xy_to_xyz(*D65)
    gains = (BRADFORD @ D50_XYZ) / (BRADFORD @ w65)
    to_d50 = np.linalg.inv(BRADFORD) @ np.diag(gains) @ BRADFORD
    colorants = to_d50 @ rgb_to_xyz_matrix(primaries, D65)
    srgb_curve = (
        b"para"
        + bytes(4)
        + struct.pack(">HH", 3, 0)
        + b"".join(s15(v) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    )
    tags = [
        (b"desc", mluc(description)),
        (b"cprt", mluc("No copyright")),
        (b"wtpt", xyz(D50_XYZ)),
        (b"rXYZ", xyz(colorants[:, 0])),
        (b"gXYZ", xyz(colorants[:, 1])),
        (b"bXYZ", xyz(colorants[:, 2])),
        (b"rTRC", srgb_curve),
        (b"gTRC", srgb_curve),
        (b"bTRC", srgb_curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for signature, content in tags:
        content += bytes(-len(content) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(content))
        body += content
    header = (
        struct.pack(">I", offset + len(body))
        + b"lcms"
        + struct.pack(">I", 0x04300000)
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(24)
        + bytes(4)
        + b"".join(s15(v) for v in D50_XYZ)
        + bytes(48)
    )
    assert len(header) == 128
    return header + table + body


P3_PROFILE = icc_profile(P3_PRIMARIES, description=P3_DESCRIPTION)
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def p3_to_srgb_reference(pixels: np.ndarray) -> np.ndarray:
    """Display P3 -> sRGB in floating point, independently of LittleCMS (clipped gamut)."""
    v = pixels.astype(np.float64) / 255
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    matrix = np.linalg.inv(rgb_to_xyz_matrix(SRGB_PRIMARIES, D65)) @ rgb_to_xyz_matrix(
        P3_PRIMARIES, D65
    )
    out = np.clip(linear @ matrix.T, 0, 1)
    encoded = np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)
    return encoded * 255


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def assert_plain_message(error: MonitorError) -> None:
    message = str(error)
    assert message.strip() == message and message.endswith(".")
    assert "Please" in message
    for leak in ("Traceback", "Error", "Exception", "PIL", "Pillow", "<", "errno", "\n"):
        assert leak not in message, f"{leak!r} in {message!r}"


# --- API ---------------------------------------------------------------------------------


def test_public_api_is_exactly_all():
    assert monitor.imaging.photo.__all__ == ["Photo", "load_photo", "MAX_PIXELS", "MIN_SIDE_PX"]
    defined_here = {
        name
        for name, value in vars(monitor.imaging.photo).items()
        if not name.startswith("_")
        and getattr(value, "__module__", None) == "monitor.imaging.photo"
    }
    assert defined_here <= set(monitor.imaging.photo.__all__)
    assert (MAX_PIXELS, MIN_SIDE_PX) == (50_000_000, 160)


# --- formats -------------------------------------------------------------------------------

ROUND_TRIPS = [
    # id, format, save options, minimum PSNR (inf = exact)
    ("jpeg", "JPEG", {"quality": 95}, LOSSY_PSNR_DB),
    ("png", "PNG", {}, float("inf")),
    ("webp-lossless", "WEBP", {"lossless": True}, float("inf")),
    ("webp-lossy", "WEBP", {"quality": 95}, LOSSY_PSNR_DB),
    ("heic", "HEIF", {"quality": 95}, LOSSY_PSNR_DB),
]


@pytest.mark.parametrize(
    ("fmt", "options", "min_psnr"),
    [case[1:] for case in ROUND_TRIPS],
    ids=[case[0] for case in ROUND_TRIPS],
)
def test_each_format_round_trips(tmp_path, fmt, options, min_psnr):
    path = write(tmp_path, f"selfie.{fmt.lower()}", encode(SOURCE, fmt, **options))

    photo = load_photo(path)

    assert photo.pixels.shape == SOURCE.shape and photo.pixels.dtype == np.uint8
    assert (photo.width, photo.height) == (400, 512)
    assert psnr(photo.pixels, SOURCE) >= min_psnr
    assert photo.source_format == fmt
    assert photo.name == f"selfie.{fmt.lower()}"
    assert photo.orientation == 1 and photo.colour_profile is None
    assert not photo.pixels.flags.writeable
    with pytest.raises(ValueError):
        photo.pixels[0, 0, 0] = 1


def test_bytes_and_path_give_the_same_photo(tmp_path):
    content = encode(SOURCE, "JPEG", quality=90)
    from_path = load_photo(write(tmp_path, "a.jpg", content))
    from_bytes = load_photo(content)
    from_bytearray = load_photo(bytearray(content), name="b.jpg")

    np.testing.assert_array_equal(from_path.pixels, from_bytes.pixels)
    np.testing.assert_array_equal(from_path.pixels, from_bytearray.pixels)
    assert (from_path.name, from_bytes.name, from_bytearray.name) == ("a.jpg", "upload", "b.jpg")
    assert load_photo(str(tmp_path / "a.jpg"), name="given").name == "given"


def test_jpeg_with_extra_pictures_is_reported_as_jpeg():
    content = encode(
        SOURCE, "MPO", quality=95, save_all=True, append_images=[Image.fromarray(SOURCE)]
    )
    assert Image.open(io.BytesIO(content)).format == "MPO"  # what Pillow calls it
    photo = load_photo(content)
    assert photo.source_format == "JPEG"
    assert psnr(photo.pixels, SOURCE) >= LOSSY_PSNR_DB


# --- orientation ---------------------------------------------------------------------------

# What a viewer shows for each EXIF orientation of the stored pixels (EXIF 2.32, 4.6.4).
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: np.rot90(a, 2),
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),  # rotate 90 degrees clockwise
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),  # rotate 90 degrees anticlockwise
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_orientation_is_applied_exactly(orientation):
    content = encode(SOURCE, "PNG", exif=exif_bytes(orientation=orientation))
    photo = load_photo(content)
    np.testing.assert_array_equal(photo.pixels, UPRIGHT[orientation](SOURCE))
    assert photo.orientation == orientation
    assert photo.pixels.flags.c_contiguous


@pytest.mark.parametrize("orientation", [3, 6, 8])
@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "HEIF"])
def test_lossy_orientation_is_applied(fmt, orientation):
    content = encode(SOURCE, fmt, quality=95, exif=exif_bytes(orientation=orientation))
    photo = load_photo(content)
    expected = UPRIGHT[orientation](SOURCE)
    assert photo.pixels.shape == expected.shape
    assert psnr(photo.pixels, expected) >= LOSSY_PSNR_DB
    assert photo.orientation == orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_plain_jpeg_decodes_as_pillow_does(orientation):
    # Plain JPEGs skip Pillow's decoder; the pixels must be the ones Pillow gives, turned.
    content = encode(SOURCE, "JPEG", quality=90, exif=exif_bytes(orientation=orientation))
    photo = load_photo(content)
    with Image.open(io.BytesIO(content)) as image:
        pillow = np.asarray(image.convert("RGB"))
    expected = np.ascontiguousarray(UPRIGHT[orientation](pillow))
    assert photo.pixels.shape == expected.shape
    assert photo.pixels.flags.c_contiguous and not photo.pixels.flags.writeable
    diff = np.abs(photo.pixels.astype(int) - expected)
    assert diff.max() <= 2 and diff.mean() < 0.1


def test_jpeg_cut_short_with_trailing_bytes_is_still_refused():
    content = encode(SOURCE, "JPEG", quality=90)
    with pytest.raises(UnreadablePhoto):
        load_photo(content[: len(content) // 2] + b"\0" * 64)


def test_unknown_orientation_value_is_ignored():
    photo = load_photo(encode(SOURCE, "PNG", exif=exif_bytes(orientation=9)))
    np.testing.assert_array_equal(photo.pixels, SOURCE)
    assert photo.orientation == 1


# --- pixel modes -------------------------------------------------------------------------


def _alpha_ramp() -> np.ndarray:
    ramp = np.linspace(0, 255, SOURCE.shape[1]).round().astype(np.uint8)
    return np.broadcast_to(ramp, SOURCE.shape[:2]).copy()


def _on_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float64)[..., None] / 255
    if colour.ndim == 2:
        colour = np.repeat(colour[..., None], 3, axis=2)
    return colour * a + 255 * (1 - a)


def case_rgba():
    alpha = _alpha_ramp()
    return encode(np.dstack([SOURCE, alpha]), "PNG"), _on_white(SOURCE, alpha), 1


def case_la():
    alpha = _alpha_ramp()
    image = Image.fromarray(np.dstack([GREY, alpha]), mode="LA")
    return encode(image, "PNG"), _on_white(GREY, alpha), 1


def case_palette():
    image = Image.fromarray(SOURCE).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return encode(image, "PNG"), np.asarray(image.convert("RGB")), 0


def case_palette_with_transparency():
    image = Image.fromarray(SOURCE).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    index = np.asarray(image)
    transparent = int(index[0, 0])
    expected = np.asarray(image.convert("RGB")).copy()
    expected[index == transparent] = 255
    return encode(image, "PNG", transparency=transparent), expected, 0


def case_cmyk_jpeg():
    return encode(Image.fromarray(SOURCE).convert("CMYK"), "JPEG", quality=95), SOURCE, None


def case_greyscale():
    return encode(GREY, "PNG"), np.dstack([GREY] * 3), 0


def case_bilevel():
    image = Image.fromarray(GREY > 128)
    assert image.mode == "1"
    expected = np.where(GREY > 128, 255, 0).astype(np.uint8)
    return encode(image, "PNG"), np.dstack([expected] * 3), 0


def case_grey_16bit():
    rng = np.random.default_rng(0)
    levels = GREY.astype(np.int64) * 257 + rng.integers(-128, 129, GREY.shape)
    levels = np.clip(levels, 0, 65535)
    levels[0, :4] = [0, 65535, 65534, 128 * 257]  # the extremes must not clip or wrap
    image = Image.fromarray(levels.astype(np.uint16))
    assert image.mode == "I;16"
    expected = np.rint(levels / 257)
    assert expected[0, :4].tolist() == [0, 255, 255, 128]
    return encode(image, "PNG"), np.dstack([expected] * 3), 0


def case_rgb_16bit():
    rng = np.random.default_rng(1)
    noise = rng.integers(-128, 129, SOURCE.shape)
    levels = np.clip(SOURCE.astype(np.int64) * 257 + noise, 0, 65535)
    levels[0, 0] = 65535
    ok, png = cv2.imencode(".png", levels.astype(np.uint16)[..., ::-1])  # OpenCV wants BGR
    assert ok
    return png.tobytes(), np.rint(levels / 257), 1


MODE_CASES = {
    "RGBA": case_rgba,
    "LA": case_la,
    "P": case_palette,
    "P+transparency": case_palette_with_transparency,
    "CMYK-JPEG": case_cmyk_jpeg,
    "L": case_greyscale,
    "1": case_bilevel,
    "I;16": case_grey_16bit,
    "RGB-16bit": case_rgb_16bit,
}


@pytest.mark.parametrize("build", MODE_CASES.values(), ids=MODE_CASES.keys())
def test_every_pixel_mode_becomes_8bit_rgb(build: Callable):
    content, expected, atol = build()

    photo = load_photo(content)

    assert photo.pixels.dtype == np.uint8 and photo.pixels.shape == SOURCE.shape
    if atol is None:  # lossy
        assert psnr(photo.pixels, expected) >= LOSSY_PSNR_DB
    else:
        np.testing.assert_allclose(photo.pixels, expected, atol=atol + 1e-9)


# --- colour profiles -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options", "atol"),
    [("PNG", {}, 1), ("WEBP", {"lossless": True}, 1), ("JPEG", {"quality": 100}, None)],
)
def test_display_p3_is_converted_to_srgb(fmt, options, atol):
    content = encode(SOURCE, fmt, icc_profile=P3_PROFILE, **options)

    photo = load_photo(content)

    assert photo.colour_profile == P3_DESCRIPTION
    expected = p3_to_srgb_reference(SOURCE)
    if atol is None:
        assert psnr(photo.pixels, expected) >= LOSSY_PSNR_DB
    else:
        np.testing.assert_allclose(photo.pixels, expected, atol=atol)
    # The conversion is not a no-op: colours come out more saturated in sRGB.
    assert np.abs(photo.pixels.astype(int) - SOURCE).mean() > 2


def test_display_p3_skin_tone_shifts_as_expected():
    # A skin tone in P3 is more saturated in sRGB; a saturated primary clips to itself.
    patches = np.zeros((MIN_SIDE_PX, MIN_SIDE_PX * 2, 3), np.uint8)
    patches[:, :MIN_SIDE_PX] = (200, 150, 120)
    patches[:, MIN_SIDE_PX:] = (255, 0, 0)
    photo = load_photo(encode(patches, "PNG", icc_profile=P3_PROFILE))
    np.testing.assert_allclose(photo.pixels[0, 0], (209, 147, 115), atol=1)
    np.testing.assert_array_equal(photo.pixels[0, -1], (255, 0, 0))


def test_large_display_p3_photo_converted_in_bands_matches_reference():
    big = np.tile(SOURCE, (4, 4, 1))[:1600, :1500]  # 2.4 MP: above the parallel threshold
    photo = load_photo(encode(big, "PNG", icc_profile=P3_PROFILE, compress_level=1))
    np.testing.assert_allclose(photo.pixels, p3_to_srgb_reference(big), atol=1)


def test_embedded_srgb_profile_keeps_pixels():
    photo = load_photo(encode(SOURCE, "PNG", icc_profile=SRGB_PROFILE))
    assert photo.colour_profile is not None and photo.colour_profile.startswith("sRGB")
    np.testing.assert_array_equal(photo.pixels, SOURCE)


def test_p3_profile_with_orientation_converts_then_rotates():
    content = encode(SOURCE, "PNG", icc_profile=P3_PROFILE, exif=exif_bytes(orientation=6))
    photo = load_photo(content)
    np.testing.assert_allclose(photo.pixels, UPRIGHT[6](p3_to_srgb_reference(SOURCE)), atol=1)


@pytest.mark.parametrize(
    ("image", "icc"),
    [
        (SOURCE, b"this is not an ICC profile"),
        (SOURCE, P3_PROFILE[:200]),  # cut short
        (GREY, P3_PROFILE),  # an RGB profile on a greyscale image
    ],
    ids=["garbage", "truncated", "wrong-colour-space"],
)
def test_unusable_profile_is_ignored(image, icc):
    photo = load_photo(encode(image, "PNG", icc_profile=icc))
    assert photo.colour_profile is None
    expected = image if image.ndim == 3 else np.dstack([image] * 3)
    np.testing.assert_array_equal(photo.pixels, expected)


# --- capture time --------------------------------------------------------------------------

FILE_TIME = datetime(2023, 11, 2, 9, 15, 0)


@pytest.mark.parametrize(
    ("exif", "expected", "source"),
    [
        (
            {"taken": "2024:03:05 07:45:12", "offset": "+01:00"},
            datetime(2024, 3, 5, 7, 45, 12, tzinfo=timezone(timedelta(hours=1))),
            "exif",
        ),
        (
            {"taken": "2024:03:05 07:45:12", "offset": "-05:30", "subseconds": "25"},
            datetime(2024, 3, 5, 7, 45, 12, 250000, tzinfo=timezone(-timedelta(hours=5.5))),
            "exif",
        ),
        ({"taken": "2024:03:05 07:45:12"}, datetime(2024, 3, 5, 7, 45, 12), "exif"),
        (
            {"taken": "2024:03:05 07:45:12", "offset": "   :  "},
            datetime(2024, 3, 5, 7, 45, 12),
            "exif",
        ),
        ({"taken": "0000:00:00 00:00:00"}, FILE_TIME, "file"),
        ({"taken": "not a date"}, FILE_TIME, "file"),
        ({}, FILE_TIME, "file"),
    ],
    ids=[
        "with-offset",
        "negative-offset-subseconds",
        "no-offset",
        "blank-offset",
        "zero-date",
        "garbage-date",
        "no-exif",
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_capture_time(tmp_path, fmt, exif, expected, source):
    options = {"exif": exif_bytes(**exif)} if exif else {}
    path = write(tmp_path, "photo", encode(SOURCE, fmt, **options))
    os.utime(path, (FILE_TIME.timestamp(), FILE_TIME.timestamp()))

    photo = load_photo(path)

    assert (photo.captured_at, photo.captured_at_source) == (expected, source)
    assert (photo.captured_at.tzinfo is None) == (expected.tzinfo is None)


def test_given_capture_time_overrides_exif_and_file(tmp_path):
    given_time = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    content = encode(SOURCE, "JPEG", exif=exif_bytes(taken="2024:03:05 07:45:12"))
    path = write(tmp_path, "p.jpg", content)
    photo = load_photo(path, captured_at=given_time)
    assert (photo.captured_at, photo.captured_at_source) == (given_time, "given")


def test_uploaded_bytes_without_exif_date_are_dated_now():
    before = datetime.now()
    photo = load_photo(encode(SOURCE, "JPEG"))
    assert photo.captured_at_source == "upload"
    assert before <= photo.captured_at <= datetime.now()


def test_uploaded_bytes_with_exif_date_use_it():
    photo = load_photo(encode(SOURCE, "JPEG", exif=exif_bytes(taken="2024:03:05 07:45:12")))
    assert photo.captured_at == datetime(2024, 3, 5, 7, 45, 12)
    assert photo.captured_at_source == "exif"


# --- metadata and privacy ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "HEIF"])
def test_metadata_keeps_allow_listed_fields_and_never_location(fmt):
    exif = exif_bytes(taken="2024:03:05 07:45:12", offset="+01:00", camera=True, gps=True)
    parsed = Image.Exif()  # sanity: the builder really wrote a GPS IFD
    parsed.load(exif)
    assert parsed.get_ifd(GPS_IFD)[2] == (51.0, 30.0, 26.46)

    photo = load_photo(encode(SOURCE, fmt, exif=exif))

    assert dict(photo.metadata) == {
        "Make": "Apple",
        "Model": "iPhone 15 Pro",
        "Software": "17.4.1",
        "DateTimeOriginal": "2024:03:05 07:45:12",
        "OffsetTimeOriginal": "+01:00",
    }
    everything = repr(photo) + repr(vars(photo))
    for private in ("GPS", "51.0", "26.46", "39.93", "Rose Street", "Jane Doe"):
        assert private not in everything
    with pytest.raises(TypeError):
        photo.metadata["GPSInfo"] = "51.5"  # type: ignore[index]


# --- Photo itself --------------------------------------------------------------------------


def _photo(**overrides) -> Photo:
    fields = {
        "pixels": np.zeros((200, 300, 3), np.uint8),
        "name": "synthetic",
        "captured_at": datetime(2024, 1, 1),
        "captured_at_source": "given",
        "source_format": "PNG",
    }
    return Photo(**(fields | overrides))


def test_photo_stores_a_read_only_view_and_leaves_the_caller_array_alone():
    pixels = np.zeros((200, 300, 3), np.uint8)
    photo = _photo(pixels=pixels)
    assert not photo.pixels.flags.writeable and pixels.flags.writeable
    assert (photo.width, photo.height) == (300, 200)
    assert (photo.orientation, photo.colour_profile) == (1, None)
    with pytest.raises(AttributeError):
        photo.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"pixels": np.zeros((200, 300, 3), np.float32)}, ValueError),
        ({"pixels": np.zeros((200, 300), np.uint8)}, ValueError),
        ({"pixels": np.zeros((200, 300, 4), np.uint8)}, ValueError),
        ({"pixels": [[0, 0, 0]]}, TypeError),
        ({"captured_at": "2024-01-01"}, TypeError),
        ({"captured_at_source": "guess"}, ValueError),
        ({"orientation": 0}, ValueError),
        ({"metadata": {"GPSInfo": "51.5, -0.1"}}, ValueError),
    ],
    ids=["float", "2d", "rgba", "list", "date-string", "bad-source", "orientation-0", "gps"],
)
def test_photo_refuses_invalid_fields(overrides, error):
    with pytest.raises(error):
        _photo(**overrides)


# --- bad input ----------------------------------------------------------------------------


def _truncated(fmt: str, **options) -> Callable[[Path], bytes]:
    def build(_: Path) -> bytes:
        content = encode(SOURCE, fmt, **options)
        return content[: len(content) // 2]

    return build


BAD_INPUTS = {
    # id: (build(tmp_path) -> bytes or a path, expected error, words in the message)
    "empty-file": (lambda p: write(p, "empty.jpg", b""), UnreadablePhoto, "empty"),
    "empty-bytes": (lambda p: b"", UnreadablePhoto, "empty"),
    "truncated-jpeg": (_truncated("JPEG", quality=90), UnreadablePhoto, "damaged or incomplete"),
    "truncated-progressive-jpeg": (
        _truncated("JPEG", quality=90, progressive=True),
        UnreadablePhoto,
        "damaged or incomplete",
    ),
    "truncated-png": (_truncated("PNG"), UnreadablePhoto, "damaged or incomplete"),
    "truncated-webp": (_truncated("WEBP"), UnreadablePhoto, "damaged or incomplete"),
    "truncated-heic": (_truncated("HEIF"), UnreadablePhoto, "damaged or incomplete"),
    "text-named-jpg": (
        lambda p: write(p, "notes.jpg", b"Dear doctor,\nmy skin is better today.\n"),
        UnreadablePhoto,
        "looks like text",
    ),
    "random-bytes": (
        lambda p: np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes(),
        UnreadablePhoto,
        "not a photo we can read",
    ),
    "gif": (lambda p: encode(SOURCE, "GIF"), UnreadablePhoto, "GIF"),
    "bmp": (lambda p: encode(SOURCE, "BMP"), UnreadablePhoto, "BMP"),
    "tiny-12x12": (lambda p: encode(SOURCE[:12, :12], "PNG"), PhotoTooSmall, "too small"),
    "thin-1000x100": (
        lambda p: encode(np.zeros((MIN_SIDE_PX - 1, 1000, 3), np.uint8), "PNG"),
        PhotoTooSmall,
        "at least 160 pixels",
    ),
    "bomb-60000x60000": (lambda p: png_claiming(60_000, 60_000), PhotoTooLarge, "too large"),
    "bomb-8000x7000": (
        lambda p: png_claiming(8000, 7000, full_data=True),
        PhotoTooLarge,
        "8000 x 7000 pixels",
    ),
    "missing-path": (lambda p: p / "gone.jpg", UnreadablePhoto, "could not find"),
    "directory": (lambda p: p, UnreadablePhoto, "could not open"),
}


@pytest.mark.parametrize(("build", "error", "words"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_raises_a_plain_monitor_error(tmp_path, build, error, words):
    source = build(tmp_path)

    with pytest.raises(error) as caught:
        load_photo(source)

    assert words in str(caught.value)
    assert_plain_message(caught.value)


def test_photo_above_max_pixels_is_refused_before_decoding():
    with pytest.raises(PhotoTooLarge) as caught:
        load_photo(encode(SOURCE, "PNG"), max_pixels=100_000)
    assert "400 x 512 pixels" in str(caught.value)
    assert load_photo(encode(SOURCE, "PNG"), max_pixels=400 * 512).width == 400


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_limit_applies_even_when_max_pixels_is_raised():
    # 100 MP: above Pillow's warning limit (about 89 MP), below its error limit.
    content = png_claiming(10_000, 10_000)
    with pytest.raises(PhotoTooLarge):
        load_photo(content, max_pixels=10**9)


def test_pillow_bomb_warning_escalated_by_filters_is_mapped():
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(PhotoTooLarge) as caught:
            load_photo(png_claiming(10_000, 10_000), max_pixels=10**9)
    assert isinstance(caught.value.__cause__, Image.DecompressionBombWarning)
    assert_plain_message(caught.value)


@pytest.mark.parametrize(
    "build",
    [lambda: png_claiming(60_000, 60_000), lambda: png_claiming(8000, 7000, full_data=True)],
    ids=["60000x60000", "8000x7000-real-bomb"],
)
def test_bomb_is_refused_with_tiny_peak_memory(build):
    content = build()
    tracemalloc.start()
    try:
        with pytest.raises(PhotoTooLarge):
            load_photo(content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_real_bomb_does_not_grow_the_process(tmp_path):
    # tracemalloc does not see Pillow's C allocations; the resident set size does.
    # Decoding this 8000 x 7000 bomb would touch 224 MB.
    path = write(tmp_path, "bomb.png", png_claiming(8000, 7000, full_data=True))
    script = textwrap.dedent(
        f"""
        import resource, sys
        from monitor.errors import PhotoTooLarge
        from monitor.imaging import load_photo
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_photo({str(path)!r})
        except PhotoTooLarge:
            pass
        else:
            sys.exit("not refused")
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    grown_kib = int(done.stdout.strip())
    assert grown_kib < 50 * 1024


@pytest.mark.parametrize(
    ("source", "options", "error"),
    [
        (12345, {}, TypeError),
        (b"", {"captured_at": "2024-01-01"}, TypeError),
        (b"", {"name": 7}, TypeError),
        (b"", {"max_pixels": 0}, ValueError),
    ],
    ids=["source-int", "captured_at-str", "name-int", "max_pixels-0"],
)
def test_wrong_arguments_are_bugs_not_monitor_errors(source, options, error):
    with pytest.raises(error) as caught:
        load_photo(source, **options)
    assert not isinstance(caught.value, MonitorError)


@functools.cache
def fuzz_seed(fmt: str) -> bytes:
    exif = exif_bytes(orientation=6, taken="2024:03:05 07:45:12", camera=True, gps=True)
    return encode(SOURCE[:200, :200], fmt, exif=exif, icc_profile=P3_PROFILE)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(["HEIF", "JPEG", "PNG", "WEBP"]),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8),
)
def test_damaged_files_load_or_raise_a_monitor_error(fmt, cut, flips):
    content = bytearray(fuzz_seed(fmt))
    for where, value in flips:
        content[int(where * (len(content) - 1))] = value
    content = content[: max(1, int(cut * len(content)))] if cut < 1 else content
    try:
        photo = load_photo(bytes(content), max_pixels=4_000_000)
    except MonitorError as error:
        assert_plain_message(error)
    else:
        assert photo.pixels.dtype == np.uint8 and photo.pixels.ndim == 3
