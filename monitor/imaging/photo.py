"""Decode a photo file into a `Photo`: the only place in the project that decodes images.

`load_photo` turns a JPEG, PNG, WebP or HEIC/HEIF file (a path or the uploaded bytes) into
8-bit sRGB pixels the way a person sees the photo on their phone: EXIF orientation applied,
an embedded colour profile (for example Display P3 from an iPhone) converted to sRGB, 16-bit
levels scaled rather than clipped, and transparency laid onto a white background. It also
reads when the photo was taken.

Everything that can go wrong with the file itself is raised as a `MonitorError` child with a
message for the patient::

    UnreadablePhoto   missing, empty, not an image, an unsupported format, damaged or cut short
    PhotoTooLarge     would decode to more than ``max_pixels`` (decompression bombs)
    PhotoTooSmall     shorter side below MIN_SIDE_PX

The pixel count is checked from the file header before any pixel is decoded, so a tiny file
that claims to be 60000 x 60000 pixels costs almost no memory.
"""

from __future__ import annotations

import io
import os
import re
import struct
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import IO, Any, Final

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from monitor.errors import PhotoTooLarge, PhotoTooSmall, UnreadablePhoto

__all__ = ["Photo", "load_photo", "MAX_PIXELS", "MIN_SIDE_PX"]

MAX_PIXELS: Final = 50_000_000
"""Largest photo accepted, in pixels (width x height); a 48 MP phone camera fits."""

MIN_SIDE_PX: Final = 160
"""Smallest accepted shorter side, in pixels: below this a face cannot be measured."""

# HEIC/HEIF support is a Pillow plugin; registering it once here makes ``Image.open`` read it.
pillow_heif.register_heif_opener()

# A truncated file must fail loudly, never decode into a photo with a grey lower half.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Pillow's JPEG opener also reads JPEGs that carry extra pictures (common on phones) and
# names them "MPO".
_FORMATS: Final = ("JPEG", "PNG", "WEBP", "HEIF")

# What decoders raise on damaged data; anything else escapes as the bug it is.
_DECODER_ERRORS: Final = (OSError, ValueError, SyntaxError, EOFError, struct.error, RuntimeError)

_CAPTURED_AT_SOURCES: Final = frozenset({"exif", "file", "given", "upload"})

# EXIF tags copied into Photo.metadata, by IFD. An allow-list, so GPS and other location or
# personal fields can never slip through.
_IFD0_TAGS: Final = {271: "Make", 272: "Model", 305: "Software"}
_EXIF_IFD: Final = 0x8769
_EXIF_IFD_TAGS: Final = {36867: "DateTimeOriginal", 36881: "OffsetTimeOriginal"}
_METADATA_KEYS: Final = frozenset({*_IFD0_TAGS.values(), *_EXIF_IFD_TAGS.values()})
_ORIENTATION_TAG: Final = 0x0112
_SUBSEC_TIME_ORIGINAL_TAG: Final = 37521
_MAX_METADATA_CHARS: Final = 128

_JPEG_END: Final = b"\xff\xd9"

# The same turns as _TRANSPOSE, on arrays (OpenCV, one copy each).
_CV2_ORIENT: Final = {
    2: lambda a: cv2.flip(a, 1),
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),
    5: cv2.transpose,
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.flip(cv2.transpose(a), -1),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}

_TRANSPOSE: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_EXIF_DATETIME: Final = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET: Final = re.compile(r"([+-])(\d{2}):?(\d{2})")

# Colour conversion of a large photo is split into horizontal bands converted in parallel
# (LittleCMS releases the GIL); below this size one band is faster.
_PARALLEL_ICC_MIN_PIXELS: Final = 2_000_000
_MAX_ICC_THREADS: Final = 4

_SRGB: Final = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))

# Printable ASCII, common whitespace and any byte of a multi-byte UTF-8 character.
_TEXT_BYTES: Final = bytes(range(0x20, 0x7F)) + b"\t\n\r\f\b" + bytes(range(0x80, 0x100))

# First bytes of files a patient might send that we do not accept, for a better message.
_OTHER_FORMATS: Final = (
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF or camera RAW file"),
    (b"MM\x00*", "a TIFF or camera RAW file"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive or an office document"),
)
_OUR_MAGIC: Final = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
_HEIF_BRANDS: Final = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"})
_AVIF_BRANDS: Final = frozenset({b"avif", b"avis"})

_PLEASE_UPLOAD: Final = "Please upload a JPEG, PNG, WebP or HEIC photo."
_EMPTY_MESSAGE: Final = (
    "This file is empty, so there is no photo in it. Please upload the photo again."
)
_DAMAGED_MESSAGE: Final = (
    "This photo is damaged or incomplete, perhaps because it was not fully uploaded or "
    "copied. Please upload it again, or choose another photo."
)
_OUT_OF_MEMORY_MESSAGE: Final = (
    "This photo is too large for us to open. Please upload a smaller copy of it."
)


@dataclass(frozen=True, eq=False, kw_only=True)
class Photo:
    """A decoded photo, ready for analysis.

    Parameters
    ----------
    pixels : ndarray of shape (H, W, 3) and dtype uint8
        RGB in sRGB, EXIF orientation already applied. Stored read-only: a writeable array
        is replaced by a read-only view of it.
    name : str
        File name (basename) or the name given to `load_photo`.
    captured_at : datetime
        When the photo was taken. Timezone-aware when the EXIF offset is known, otherwise
        naive local time.
    captured_at_source : {"exif", "file", "given", "upload"}
        Where `captured_at` came from: EXIF DateTimeOriginal, the file's modification time,
        the caller, or the moment uploaded bytes without an EXIF date were loaded.
    orientation : int, default 1
        The EXIF orientation (1-8) that was applied to reach `pixels`; 1 when none.
    source_format : str
        The file format: ``"JPEG"``, ``"PNG"``, ``"WEBP"`` or ``"HEIF"``.
    colour_profile : str or None, default None
        Description of the embedded ICC profile that was honoured (converted to sRGB, or
        already sRGB); None when there was none or it could not be used.
    metadata : Mapping[str, str], default empty
        A few harmless EXIF fields: Make, Model, Software, DateTimeOriginal,
        OffsetTimeOriginal. Never GPS or any other location information: other keys are
        refused. Stored read-only.

    Notes
    -----
    Equality is identity (``eq=False``): whether two pixel arrays match is the caller's call.
    """

    pixels: np.ndarray = field(repr=False)
    name: str
    captured_at: datetime
    captured_at_source: str
    orientation: int = 1
    source_format: str
    colour_profile: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pixels = self.pixels
        if not isinstance(pixels, np.ndarray):
            raise TypeError(f"pixels must be a numpy array, got {type(pixels).__name__}")
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(
                "pixels must be a uint8 array of shape (H, W, 3), "
                f"got {pixels.dtype} array of shape {pixels.shape}"
            )
        if pixels.flags.writeable:
            pixels = pixels.view()
            pixels.flags.writeable = False
            object.__setattr__(self, "pixels", pixels)
        if not isinstance(self.captured_at, datetime):
            raise TypeError(
                f"captured_at must be a datetime, got {type(self.captured_at).__name__}"
            )
        if self.captured_at_source not in _CAPTURED_AT_SOURCES:
            raise ValueError(
                f"captured_at_source must be one of {sorted(_CAPTURED_AT_SOURCES)}, "
                f"got {self.captured_at_source!r}"
            )
        if self.orientation not in range(1, 9):
            raise ValueError(f"orientation must be an EXIF orientation 1-8, got {self.orientation}")
        unknown = set(self.metadata) - _METADATA_KEYS
        if unknown:
            raise ValueError(
                f"metadata may only hold {sorted(_METADATA_KEYS)}, got {sorted(unknown)}"
            )
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def width(self) -> int:
        """Width in pixels, after orientation."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels, after orientation."""
        return int(self.pixels.shape[0])


def load_photo(
    source: str | os.PathLike[str] | bytes,
    *,
    name: str | None = None,
    captured_at: datetime | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Photo:
    """Decode a photo file into 8-bit sRGB pixels, upright, with its capture time.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        Path of a JPEG, PNG, WebP or HEIC/HEIF file, or its content (e.g. an upload).
    name : str, optional
        Name to record; defaults to the file's basename, or ``"upload"`` for bytes.
    captured_at : datetime, optional
        When the photo was taken; overrides anything read from the file
        (``captured_at_source="given"``).
    max_pixels : int, default MAX_PIXELS
        Refuse photos with more pixels (width x height) than this, before decoding them.
        Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) also applies.

    Returns
    -------
    Photo
        ``pixels`` of shape (H, W, 3), dtype uint8, read-only.

    Raises
    ------
    UnreadablePhoto
        The file is missing, empty, not an image, in a format we do not accept, or damaged
        or cut short.
    PhotoTooLarge
        The photo would decode to more than `max_pixels` pixels.
    PhotoTooSmall
        The photo's shorter side is below `MIN_SIDE_PX` pixels.
    TypeError, ValueError
        The arguments themselves are wrong (a bug in the caller, not a problem with the photo).

    Notes
    -----
    Capture time: EXIF DateTimeOriginal (with SubSecTimeOriginal), made timezone-aware by
    OffsetTimeOriginal when present; otherwise the file's modification time as naive local
    time (``"file"``); for bytes without a usable EXIF date, the current local time
    (``"upload"``), since uploaded bytes carry no file time.

    Transparency is laid onto a white background. 16-bit levels are scaled (65535 -> 255).
    A damaged or unusable ICC profile is ignored and the pixels are taken as sRGB.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if captured_at is not None and not isinstance(captured_at, datetime):
        raise TypeError(f"captured_at must be a datetime, got {type(captured_at).__name__}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")

    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise UnreadablePhoto(_EMPTY_MESSAGE)
        return _load(
            io.BytesIO(data),
            name="upload" if name is None else name,
            fallback_time=(datetime.now(), "upload"),
            captured_at=captured_at,
            max_pixels=max_pixels,
        )

    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"source must be a path or the file's bytes, got {type(source).__name__}")
    path = os.fsdecode(source)
    shown_name = os.path.basename(path) if name is None else name
    try:
        fp = open(path, "rb")
    except FileNotFoundError as error:
        raise UnreadablePhoto(
            f"We could not find the photo '{shown_name}'. "
            "Please check that the file is still there and try again."
        ) from error
    except OSError as error:
        raise UnreadablePhoto(
            f"We could not open the photo '{shown_name}'. "
            "Please check that it is a photo file you are allowed to read, and try again."
        ) from error
    with fp:
        try:
            stat = os.fstat(fp.fileno())
        except OSError as error:
            raise UnreadablePhoto(_DAMAGED_MESSAGE) from error
        if stat.st_size == 0:
            raise UnreadablePhoto(_EMPTY_MESSAGE)
        return _load(
            fp,
            name=shown_name,
            fallback_time=(datetime.fromtimestamp(stat.st_mtime), "file"),
            captured_at=captured_at,
            max_pixels=max_pixels,
        )


def _load(
    fp: IO[bytes],
    *,
    name: str,
    fallback_time: tuple[datetime, str],
    captured_at: datetime | None,
    max_pixels: int,
) -> Photo:
    """Decode an open binary file; every problem with the file leaves as a MonitorError."""
    image = _open_header(fp, max_pixels=max_pixels)
    # Pillow reads lazily from the open file, so everything up to the array stays inside.
    with image:
        exif = _read_exif(image)
        source_format = "JPEG" if image.format == "MPO" else str(image.format)
        if source_format == "HEIF":
            # libheif has already turned the pixels upright and reset the EXIF tag to 1.
            orientation = _valid_orientation(image.info.get("original_orientation"))
            to_apply = 1
        else:
            orientation = to_apply = _valid_orientation(exif.get(_ORIENTATION_TAG))
        pixels = _decode_plain_jpeg(image, fp, to_apply)
        colour_profile = None
        if pixels is None:
            try:
                image.load()
            except MemoryError as error:
                raise PhotoTooLarge(_OUT_OF_MEMORY_MESSAGE) from error
            except _DECODER_ERRORS as error:
                raise UnreadablePhoto(_DAMAGED_MESSAGE) from error
            try:
                rgb, colour_profile = _to_srgb(image, image.info.get("icc_profile"))
                if to_apply in _TRANSPOSE:
                    rgb = rgb.transpose(_TRANSPOSE[to_apply])
                # The one copy out of Pillow's internal layout, into immutable bytes.
                pixels = np.asarray(rgb)
            except MemoryError as error:
                raise PhotoTooLarge(_OUT_OF_MEMORY_MESSAGE) from error
    pixels.flags.writeable = False

    metadata, exif_time = _exif_metadata(exif)
    if captured_at is not None:
        when, when_source = captured_at, "given"
    elif exif_time is not None:
        when, when_source = exif_time, "exif"
    else:
        when, when_source = fallback_time
    return Photo(
        pixels=pixels,
        name=name,
        captured_at=when,
        captured_at_source=when_source,
        orientation=orientation,
        source_format=source_format,
        colour_profile=colour_profile,
        metadata=metadata,
    )


def _decode_plain_jpeg(
    image: ImageFile.ImageFile, fp: IO[bytes], to_apply: int
) -> np.ndarray | None:
    """Decode a complete colour JPEG without a colour profile straight into numpy, else None.

    Most phone JPEGs are this case. OpenCV's libjpeg-turbo writes the pixels into the array
    directly, where Pillow's route to numpy costs two more full copies (about as long as the
    decoding itself at 12 MP). Anything else (a profile to convert, CMYK or grey, a file that
    does not end with the end-of-image marker, which is how a cut-short file shows) takes
    Pillow's path, which converts colour and refuses truncated files.
    """
    if image.format not in {"JPEG", "MPO"} or image.mode != "RGB":
        return None
    if image.info.get("icc_profile"):
        return None
    try:
        fp.seek(0)
        data = fp.read()
    except (OSError, ValueError):
        return None
    if not data.rstrip(b"\0").endswith(_JPEG_END):
        return None
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        rgb = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        return None
    if rgb is None or rgb.shape != (image.height, image.width, 3):
        return None
    if to_apply in _CV2_ORIENT:
        rgb = _CV2_ORIENT[to_apply](rgb)
    return rgb


def _open_header(fp: IO[bytes], *, max_pixels: int) -> ImageFile.ImageFile:
    """Open lazily (header only) and refuse bad, too large or too small photos early."""
    # Pillow warns between its own limit and twice it, and raises above; we refuse from
    # the smaller of its limit and ours. The warning reaches the except clause only when
    # warning filters turn it into an exception.
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    try:
        image = Image.open(fp, formats=_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise PhotoTooLarge(_too_large_message(None, limit)) from error
    except UnidentifiedImageError as error:
        raise UnreadablePhoto(_not_a_photo_message(fp)) from error
    except MemoryError as error:
        raise PhotoTooLarge(_OUT_OF_MEMORY_MESSAGE) from error
    except _DECODER_ERRORS as error:  # a plugin choking on a damaged header
        raise UnreadablePhoto(_DAMAGED_MESSAGE) from error

    width, height = image.size
    if width * height > limit:
        image.close()
        raise PhotoTooLarge(_too_large_message((width, height), limit))
    if min(width, height) < MIN_SIDE_PX:
        image.close()
        raise PhotoTooSmall(
            f"This photo is too small ({width} x {height} pixels): we need at least "
            f"{MIN_SIDE_PX} pixels on its shorter side to see your face clearly. Please "
            "upload the original photo from your camera, not a thumbnail or a preview."
        )
    return image


def _too_large_message(size: tuple[int, int] | None, limit: int) -> str:
    limit_text = f"{limit / 1e6:.3g} million pixels"
    if size is None:
        what = f"it has more than {limit_text}"
    else:
        what = f"{size[0]} x {size[1]} pixels; we accept up to {limit_text}"
    return (
        f"This photo is too large for us to process ({what}). Please upload the photo as "
        "your phone's camera saved it, or a smaller copy."
    )


def _not_a_photo_message(fp: IO[bytes]) -> str:
    """Say what the file seems to be, from its first bytes, when no decoder accepted it."""
    try:
        fp.seek(0)
        head = fp.read(512)
    except (OSError, ValueError):
        head = b""
    if head.startswith(_OUR_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return _DAMAGED_MESSAGE
    kind = None
    if head[4:8] == b"ftyp":
        if head[8:12] in _HEIF_BRANDS:
            return _DAMAGED_MESSAGE
        kind = "an AVIF image" if head[8:12] in _AVIF_BRANDS else "a video"
    for magic, other_kind in _OTHER_FORMATS:
        if kind is None and head.startswith(magic):
            kind = other_kind
    if kind is None and head and not head.translate(None, _TEXT_BYTES):
        kind = "text"
    if kind is None:
        return f"This file is not a photo we can read. {_PLEASE_UPLOAD}"
    return f"This file is not a photo we can read (it looks like {kind}). {_PLEASE_UPLOAD}"


def _to_srgb(image: Image.Image, icc: Any) -> tuple[Image.Image, str | None]:
    """Return an 8-bit RGB image in sRGB and the description of the profile honoured."""
    image = _to_8bit(image)
    if image.mode in {"RGBA", "LA"}:
        image = _on_white(image)
    profile = _read_profile(icc)
    if profile is not None:
        converted = _convert_profile(image, profile)
        if converted is not None:
            return converted, _profile_description(profile)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image, None


def _to_8bit(image: Image.Image) -> Image.Image:
    """Bring any Pillow mode to one of L, LA, RGB, RGBA or CMYK with 8 bits per channel.

    Pillow already reads 16-bit RGB(A) PNGs as 8-bit (keeping the high byte); 16-bit
    greyscale arrives as mode I;16 or I and is scaled here.
    """
    mode = image.mode
    if mode in {"L", "LA", "RGB", "RGBA", "CMYK"}:
        return image
    if mode in {"P", "PA"}:
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;16") or mode == "I":
        # Scale with rounding (65535 -> 255, 257 * k -> k), never clip at 255.
        levels = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        return Image.fromarray(((levels + 128) // 257).astype(np.uint8))
    return image.convert("RGB")


def _on_white(image: Image.Image) -> Image.Image:
    """Lay an image with transparency onto a white background, in its own colour space."""
    mode = image.mode[:-1]  # "RGBA" -> "RGB", "LA" -> "L"
    background = Image.new(mode, image.size, 255 if mode == "L" else (255, 255, 255))
    background.paste(image.convert(mode), mask=image.getchannel("A"))
    return background


def _read_profile(icc: Any) -> ImageCms.ImageCmsProfile | None:
    if not icc or not isinstance(icc, bytes):
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return None  # a broken profile: take the pixels as sRGB


def _profile_description(profile: ImageCms.ImageCmsProfile) -> str | None:
    try:
        text = profile.profile.profile_description
    except (AttributeError, OSError, ValueError, UnicodeError):
        return None
    return _clean_text(text) or "unnamed profile"


def _convert_profile(image: Image.Image, profile: ImageCms.ImageCmsProfile) -> Image.Image | None:
    """Convert from the embedded profile to sRGB; None when the profile does not fit."""
    description = _profile_description(profile) or ""
    if image.mode == "RGB" and description.startswith("sRGB"):
        return image  # already sRGB: the conversion would be the identity
    try:
        transform = ImageCms.buildTransform(
            profile,
            _SRGB,
            image.mode,
            "RGB",
            renderingIntent=ImageCms.Intent.PERCEPTUAL,
            flags=ImageCms.Flags.NOCACHE,  # the transform is shared by several threads
        )
        return _apply_in_bands(image, transform)
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return None  # e.g. an RGB profile on a greyscale image


def _apply_in_bands(image: Image.Image, transform: ImageCms.ImageCmsTransform) -> Image.Image:
    """Apply a colour transform, in parallel horizontal bands for large photos."""
    width, height = image.size
    bands = min(_MAX_ICC_THREADS, os.cpu_count() or 1, height)
    if width * height < _PARALLEL_ICC_MIN_PIXELS or bands < 2:
        if image.mode == "RGB":  # in place: saves a second full-size image
            return transform.apply_in_place(image)
        return transform.apply(image)
    edges = np.linspace(0, height, bands + 1).astype(int)
    boxes = [
        (0, int(top), width, int(bottom)) for top, bottom in zip(edges, edges[1:], strict=False)
    ]
    result = Image.new("RGB", image.size)

    def convert(box: tuple[int, int, int, int]) -> Image.Image:
        return transform.apply(image.crop(box))

    with ThreadPoolExecutor(max_workers=bands) as pool:
        for box, band in zip(boxes, pool.map(convert, boxes), strict=True):
            result.paste(band, box)
    return result


def _read_exif(image: Image.Image) -> Image.Exif:
    """The image's EXIF, or an empty one when it is missing or cannot be parsed."""
    try:
        return image.getexif()
    except _DECODER_ERRORS:  # malformed EXIF must not make the photo unreadable
        return Image.Exif()


def _valid_orientation(value: Any) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _exif_metadata(exif: Image.Exif) -> tuple[dict[str, str], datetime | None]:
    """The allow-listed EXIF fields as text, and the capture time they give (if any)."""
    metadata: dict[str, str] = {}
    for tag, key in _IFD0_TAGS.items():
        text = _clean_text(exif.get(tag))
        if text:
            metadata[key] = text
    try:
        exif_ifd = exif.get_ifd(_EXIF_IFD)
    except _DECODER_ERRORS:  # a malformed sub-IFD: keep what IFD0 gave
        exif_ifd = {}
    for tag, key in _EXIF_IFD_TAGS.items():
        text = _clean_text(exif_ifd.get(tag))
        if text:
            metadata[key] = text
    when = _parse_exif_time(
        metadata.get("DateTimeOriginal"),
        subseconds=_clean_text(exif_ifd.get(_SUBSEC_TIME_ORIGINAL_TAG)),
        offset=metadata.get("OffsetTimeOriginal"),
    )
    return metadata, when


def _clean_text(value: Any) -> str:
    """EXIF text as a short printable string ("" for anything that is not text)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return ""
    text = "".join(char for char in value if char.isprintable())
    return text.strip()[:_MAX_METADATA_CHARS]


def _parse_exif_time(text: str | None, *, subseconds: str, offset: str | None) -> datetime | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" (+ sub-seconds, offset) as a datetime; None if unusable."""
    match = _EXIF_DATETIME.match(text or "")
    if match is None:
        return None
    digits = "".join(char for char in subseconds if char.isdigit())[:6]
    microsecond = int(digits.ljust(6, "0")) if digits else 0
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        when = datetime(year, month, day, hour, minute, second, microsecond)
    except ValueError:  # "0000:00:00 00:00:00" and other impossible dates
        return None
    tz = _parse_exif_offset(offset)
    return when if tz is None else when.replace(tzinfo=tz)


def _parse_exif_offset(text: str | None) -> timezone | None:
    """EXIF "+HH:MM" as a timezone; None if absent or unusable."""
    match = _EXIF_OFFSET.fullmatch(text or "")
    if match is None:
        return None
    sign, hours, minutes = (match[1], int(match[2]), int(match[3]))
    if hours >= 24 or minutes >= 60:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if sign == "-" else delta)
