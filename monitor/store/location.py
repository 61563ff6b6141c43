"""Location stripping: a JPEG's EXIF GPS block and XMP packet cut out, without re-encoding."""

from __future__ import annotations

import io
import struct

__all__ = [
    "strip_location",
]


#: EXIF kept in a stored JPEG (an allow-list): IFD0 orientation and time; in the Exif IFD the
#: capture times, their offsets and sub-seconds, and the colour space. Everything else goes:
#: GPS, the camera's owner and serial numbers, artist, copyright, maker notes, thumbnails.
_KEEP_IFD0 = frozenset({0x0112, 0x0132})


_EXIF_IFD = 0x8769


_KEEP_EXIF_IFD = frozenset({0x9003, 0x9004, 0x9010, 0x9011, 0x9012, 0x9290, 0x9291, 0x9292,
                            0xA001})


def strip_location(data: bytes) -> tuple[bytes, str]:
    """The bytes to store for an upload, with identifying metadata removed, and their suffix.

    A JPEG keeps its image data untouched and only allow-listed metadata: the EXIF
    orientation and capture time, the colour profile (ICC) and the JFIF/Adobe headers that
    decoding needs. Comments, XMP, IPTC (APP13), other APP segments, EXIF thumbnails and
    anything after the image's end are dropped. Any other format becomes a PNG of the
    decoded photo (no metadata). Raises the :mod:`monitor.imaging.photo` errors for non-photos.
    """
    if data[:3] == b"\xff\xd8\xff":
        stripped = _strip_jpeg(data)
        if stripped is not None:
            return stripped, ".jpg"
    from PIL import Image

    from monitor.imaging import load_photo

    photo = load_photo(data, name="upload")
    out = io.BytesIO()
    Image.fromarray(photo.pixels).save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue(), ".png"


def _allowed_exif(body: bytes) -> bytes:
    """An APP1 EXIF body with only the allow-listed tags ("" when nothing is kept)."""
    from PIL import Image

    try:
        exif = Image.Exif()
        exif.load(body[6:])
        kept = Image.Exif()
        for tag in _KEEP_IFD0:
            if tag in exif:
                kept[tag] = exif[tag]
        sub = {tag: value for tag, value in exif.get_ifd(_EXIF_IFD).items()
               if tag in _KEEP_EXIF_IFD}
        if sub:
            kept[_EXIF_IFD] = sub
        if not len(kept):
            return b""
        new_body = b"Exif\x00\x00" + kept.tobytes()
    except Exception:  # noqa: BLE001 - damaged EXIF: drop it whole
        return b""
    return new_body if len(new_body) + 2 <= 0xFFFF else b""


def _strip_jpeg(data: bytes) -> bytes | None:
    """The JPEG with allow-listed metadata only; None when the marker layout is unexpected."""
    out = bytearray(data[:2])
    pos = 2
    while pos + 2 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image: whatever follows (another image, data) goes
            out += b"\xff\xd9"
            return bytes(out)
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            out += data[pos:pos + 2]
            pos += 2
            continue
        if pos + 4 > len(data):
            return None
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if length < 2 or pos + 2 + length > len(data):
            return None
        segment = data[pos:pos + 2 + length]
        body = segment[4:]
        pos += 2 + length
        if marker == 0xE1 and body.startswith(b"Exif\x00\x00"):
            new_body = _allowed_exif(body)
            if new_body:
                out += b"\xff\xe1" + struct.pack(">H", len(new_body) + 2) + new_body
        elif marker == 0xE0 and body.startswith(b"JFIF\x00") and len(body) >= 14:
            jfif = body[:12] + b"\x00\x00"  # no thumbnail
            out += b"\xff\xe0" + struct.pack(">H", len(jfif) + 2) + jfif
        elif (marker == 0xE2 and body.startswith(b"ICC_PROFILE\x00")) \
                or (marker == 0xEE and body.startswith(b"Adobe")) \
                or not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out += segment  # colour profile, Adobe colour transform, tables, frame, scan
        if marker == 0xDA:  # start of scan: copy the entropy-coded data up to a marker
            end = pos
            while True:
                end = data.find(b"\xff", end)
                if end < 0 or end + 1 >= len(data):
                    out += data[pos:]
                    return bytes(out) + (b"" if data.endswith(b"\xff\xd9") else b"\xff\xd9")
                following = data[end + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    end += 2
                    continue
                break
            out += data[pos:end]
            pos = end
    return None
