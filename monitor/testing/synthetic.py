"""Seeded synthetic photo courses with known ground truth.

A course is a series of daily selfies of one real public-domain face (scikit-image's astronaut
portrait, NASA, public domain) with painted inflammatory lesions (papules, pustules), painted
diffuse erythema, brown moles that are there every day, and a different pose and light on every
day. Everything that was painted and every geometric change is known exactly, so the engine's
alignment, redness and lesion figures can be checked against it.

Geometry. A photo is made from the *base* image (the portrait with that day's skin painted on)
by a backward map: photo pixel ``x`` shows base point ``q + D(q)`` with ``q = H⁻¹ x``, where
``H`` is the day's homography (roll, scale, translation, slight perspective) and ``D`` a smooth
expression-like displacement (a smile pulling the mouth corners, a slight jaw drop).
:meth:`SyntheticPhoto.to_photo` maps base points into the photo exactly (up to a fixed-point
iteration of ``D``), so ground-truth correspondences between any two photos are known.

Light. White balance gains (red up, blue down or the reverse) and an exposure gain are applied
in linear light, then sensor noise and JPEG-like 8-bit quantisation.

Faces (``make_course(face=...)``, see :data:`FACES`). Every face is a real photo that ships
inside an installed package, so nothing is downloaded:

- ``"astronaut"`` (the default): scikit-image's ``astronaut.png`` (Eileen Collins, NASA, public
  domain).
- ``"hopper"``: Matplotlib's sample ``grace_hopper.jpg`` (Grace Hopper, official U.S. Navy
  portrait, public domain; added to Matplotlib in its pull request 1599 as a public-domain
  image): an older face with glasses and wrinkles. Matplotlib is installed as a dependency
  of MediaPipe.
- ``"astronaut_deep"``, ``"hopper_deep"``: the same portraits with a brown skin tone made by
  adding epidermal melanin in linear light (each channel's reflectance times
  ``exp(-d * mu_c)``, melanin absorbing blue most and red least), on the skin only.

Lesions (``make_course(lesion_style=...)``, see :data:`LESION_STYLES`). ``"painted"`` (the
default) paints red Gaussian discs, with a pale head for pustules. ``"real"`` blends real
papules and pustules cut from the ACNE04 training photos (read in place from
:data:`ACNE04_TRAIN`, never copied; see :func:`lesion_patches`): each lesion's contrast against
its own surrounding skin, as a ratio in linear light, multiplies the target skin under a soft
circular alpha, so the lesion's contrast is real and the skin tone is the target face's. A ratio
of reflectances is what an extra absorber (blood in a papule) does to any skin, which is why
it carries over between skin tones. Their radii are drawn in millimetres (1-3 mm by default) at
the base face's scale (63 mm between the pupils).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path

import cv2
import numpy as np

from monitor.imaging import INTER_OCULAR_MM, LEFT_IRIS, RIGHT_IRIS, Face, find_face, mesh_parts
from monitor.testing.evaluation import voc_objects

__all__ = [
    "ACNE04_TRAIN",
    "FACES",
    "LESION_STYLES",
    "LesionPatch",
    "PaintedLesion",
    "SyntheticPhoto",
    "SyntheticCourse",
    "PoseRange",
    "base_face",
    "card_corners",
    "encode_jpeg",
    "main",
    "lesion_patches",
    "make_course",
    "write_course",
]

#: Faces a course can be made on (:func:`base_face`); the first is the default.
FACES = ("astronaut", "hopper", "astronaut_deep", "hopper_deep")

#: How lesions are drawn: painted discs (the default) or real lesions from ACNE04 photos.
LESION_STYLES = ("painted", "real")

#: The annotated ACNE04 training photos real lesions are cut from, read in place.
ACNE04_TRAIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "acne04-train"

_BASE_SIZE = 1100  # the base image is the portrait's head, upscaled to a ~400 px wide face
_CROP = (0, 256, 97, 353)  # rows, cols of the 512x512 portrait around the face


@dataclass(frozen=True)
class PaintedLesion:
    """A lesion painted onto the base face, visible on days ``first_day``..``last_day``."""

    x: float
    y: float
    radius_px: float
    kind: str  # "papule" | "pustule"
    first_day: int
    last_day: int
    id: int = 0
    source: str = ""  # real lesions: "{ACNE04 photo}#{box index}" it was cut from

    def visible_on(self, day: int) -> bool:
        return self.first_day <= day <= self.last_day


@dataclass(frozen=True)
class PoseRange:
    """How far each photo's pose and light may stray, drawn uniformly within ± each bound."""

    roll_deg: float = 12.0
    scale: float = 0.15
    shift_frac: float = 0.04
    perspective: float = 0.03  # corner displacement from perspective, as a fraction of size
    expression_iod: float = 0.012  # largest expression displacement, in inter-ocular distances
    white_balance: float = 0.12
    exposure: float = 0.15
    noise_sigma: float = 1.5


DEFAULT_POSE = PoseRange()


@dataclass(frozen=True, eq=False)
class SyntheticPhoto:
    """One day's photo and everything that is known about it."""

    day: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    homography: np.ndarray  # (3, 3) base -> photo, before the expression warp
    expression: tuple[tuple[float, float, float, float, float], ...]  # (cx, cy, dx, dy, sigma)
    erythema: float  # painted diffuse erythema, 0..1
    white_balance: float
    exposure: float
    lesions: tuple[PaintedLesion, ...]  # lesions visible on this day, base coordinates
    captured_at: datetime

    def _displacement(self, points: np.ndarray) -> np.ndarray:
        return _displacement(self.expression, points)

    def to_photo(self, base_points: np.ndarray) -> np.ndarray:
        """Map (N, 2) base-image points into this photo's pixels."""
        p = np.asarray(base_points, np.float64).reshape(-1, 2)
        q = p.copy()
        for _ in range(30):  # solve q + D(q) = p; D is smooth and small, so this converges
            q = p - self._displacement(q)
        return _apply(self.homography, q)

    def lesions_in_photo(self) -> list[dict]:
        """Visible lesions with centre and radius in this photo's pixels."""
        if not self.lesions:
            return []
        centres = self.to_photo(np.array([(les.x, les.y) for les in self.lesions]))
        scale = float(np.sqrt(abs(np.linalg.det(self.homography[:2, :2]))))
        return [
            {"x": float(cx), "y": float(cy), "radius": les.radius_px * scale, "kind": les.kind,
             "id": les.id, **({"source": les.source} if les.source else {})}
            for les, (cx, cy) in zip(self.lesions, centres, strict=True)
        ]


@dataclass(frozen=True, eq=False)
class SyntheticCourse:
    """A seeded course of daily photos of one face."""

    seed: int
    treatment_date: date
    photos: tuple[SyntheticPhoto, ...]
    lesions: tuple[PaintedLesion, ...]
    moles: tuple[tuple[float, float, float], ...]  # (x, y, radius) brown spots, every day
    base_landmarks: np.ndarray = field(repr=False)  # (478, 2) face points on the base image
    base_inter_ocular_px: float = 0.0
    face: str = "astronaut"  # a name in FACES
    lesion_style: str = "painted"  # a name in LESION_STYLES

    def correspondence(self, day_from: int, day_to: int,
                       points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The same face points in two photos: (N, 2) in ``day_from``'s and ``day_to``'s pixels."""
        points = self.base_landmarks if points is None else points
        by_day = {p.day: p for p in self.photos}
        return by_day[day_from].to_photo(points), by_day[day_to].to_photo(points)


def base_face(face: str = "astronaut") -> tuple[np.ndarray, np.ndarray, float]:
    """The base portrait, its landmarks and inter-ocular distance (cached per process).

    Parameters
    ----------
    face : str
        A name in :data:`FACES` (see the module's docstring for each face's source).

    Returns
    -------
    image : ndarray of shape (1100, 1100, 3), uint8
        The head, upscaled to a face about 400 px wide; read-only.
    landmarks : ndarray of shape (478, 2)
        MediaPipe Face Mesh points on ``image``.
    inter_ocular_px : float
        Pupil-to-pupil distance on ``image``.
    """
    cached = _BASES.get(face)
    if cached is None:
        if face not in _FACE_SOURCES:
            raise ValueError(f"face must be one of {FACES}, got {face!r}")
        load, (r0, r1, c0, c1), melanin = _FACE_SOURCES[face]
        image = cv2.resize(load()[r0:r1, c0:c1], (_BASE_SIZE, _BASE_SIZE),
                           interpolation=cv2.INTER_CUBIC)
        found = find_face(image)
        if melanin:
            image = _add_melanin(image, found, melanin)
            found = find_face(image)
        image.flags.writeable = False
        cached = (image, found.landmarks, found.inter_ocular_px)
        _BASES[face] = cached
    return cached


_BASES: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}


def _astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


def _hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


# Rows and columns of the 600x512 Hopper portrait around the face: the same framing as _CROP
# gives the astronaut (face about 0.37 of the crop's width, eyes a little above its middle).
_HOPPER_CROP = (0, 480, 24, 504)

# Melanin optical depth added to the deep-skin faces: the skin's linear reflectance of red,
# green and blue falls to about 41 %, 31 % and 20 %, from a light to a brown skin (the
# astronaut's cheeks go from L* 63, ITA 33 degrees, "intermediate", to L* 39, ITA -24 degrees,
# "brown" in Chardon's classes).
_DEEP_MELANIN = 0.9

_FACE_SOURCES: dict[str, tuple[Callable[[], np.ndarray], tuple[int, int, int, int], float]] = {
    "astronaut": (_astronaut, _CROP, 0.0),
    "hopper": (_hopper, _HOPPER_CROP, 0.0),
    "astronaut_deep": (_astronaut, _CROP, _DEEP_MELANIN),
    "hopper_deep": (_hopper, _HOPPER_CROP, _DEEP_MELANIN),
}

# Melanin's absorption in the camera's red, green and blue, relative to red. Its spectrum falls
# as lambda^-3.33 (Jacques' fit for the epidermal melanosome), which at the primaries' peaks
# (610, 550, 465 nm) gives 1 : 1.41 : 2.47; that overstates what a broad blue channel sees and
# turns the skin an oversaturated yellow (b* 31 at L* 40), so blue is flattened to 1.8, which
# lands in measured brown skin (L* about 40, a* 11, b* 24).
_MELANIN_ABSORPTION = np.array([1.0, 1.3, 1.8], np.float32)


def _add_melanin(image: np.ndarray, face: Face, optical_depth: float) -> np.ndarray:
    """The portrait with more epidermal melanin on its skin, in linear light; uint8 RGB.

    Skin is the face's own skin (landmarks) and whatever around the head has its chromaticity
    (neck, ears, the jaw's sides), feathered; hair, eyes, clothes and background keep theirs.
    """
    weight = _skin_weight(image, face)
    lin = _srgb_to_linear(image.astype(np.float32) / 255.0)
    lin *= np.exp(-optical_depth * weight[..., None] * _MELANIN_ABSORPTION)
    return np.clip(np.round(_linear_to_srgb(lin) * 255.0), 0, 255).astype(np.uint8)


def _skin_weight(image: np.ndarray, face: Face) -> np.ndarray:
    """How much each pixel is skin, 0..1: the landmarks' skin, and skin-coloured pixels nearby."""
    x0, y0, x1, y1 = face.box
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float32)
    # Near the head only: an ellipse around the face oval, reaching down over the neck.
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.3 * (y1 - y0)
    near = ((xs - cx) / (0.8 * (x1 - x0))) ** 2 + ((ys - cy) / (0.85 * (y1 - y0))) ** 2 < 1.0
    weight = np.maximum(_skin_colour_weight(image, face) * near,
                        face.skin_mask().astype(np.float32))
    return cv2.GaussianBlur(weight.astype(np.float32), (0, 0), 0.04 * face.inter_ocular_px)


def _skin_colour_weight(image: np.ndarray, face: Face) -> np.ndarray:
    """How close each pixel is to the face's own skin chromaticity (a*, b*), 0..1."""
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    seeds = cv2.erode(face.skin_mask().astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    a, b = lab[..., 1], lab[..., 2]
    centre = np.array([np.median(a[seeds]), np.median(b[seeds])], np.float32)
    spread = np.array([np.median(np.abs(a[seeds] - centre[0])),
                       np.median(np.abs(b[seeds] - centre[1]))], np.float32) * 1.4826
    spread = np.maximum(spread, 2.0)
    distance = np.hypot((a - centre[0]) / spread[0], (b - centre[1]) / spread[1])
    weight = 1.0 / (1.0 + np.exp((distance - 3.0) / 0.5))
    return weight * np.clip((lab[..., 0] - 15.0) / 10.0, 0.0, 1.0)  # not the deep shadows


@dataclass(frozen=True, eq=False)
class LesionPatch:
    """A real lesion cut from an annotated photo, as its contrast against its own skin.

    Parameters
    ----------
    log_ratio : ndarray of shape (S, S, 3), float32
        Log of the window's linear-light RGB over the surrounding skin (a plane per channel
        fitted on the ring 1.4-2.1 radii from the centre): 0 where it looks like the skin
        around it. The lesion's centre is at pixel ((S - 1) / 2, (S - 1) / 2).
    radius_px : float
        The lesion's radius in the window's pixels (a quarter of the box's width plus height).
    kind : str
        ``"papule"`` or ``"pustule"``, as annotated.
    source : str
        ``"{photo file}#{box index}"`` it was cut from.
    """

    log_ratio: np.ndarray
    radius_px: float
    kind: str
    source: str

    def __post_init__(self) -> None:
        if self.log_ratio.ndim != 3 or self.log_ratio.shape[2] != 3:
            raise ValueError(f"log_ratio must have shape (S, S, 3), got {self.log_ratio.shape}")
        if self.kind not in {"papule", "pustule"}:
            raise ValueError(f"kind must be 'papule' or 'pustule', got {self.kind!r}")


# Which annotated boxes make a patch: a papule or pustule 12-40 px across, alone in its window
# (no other box of any class reaching into it) and whose window lies inside the photo.
_PATCH_CLASSES = {"papules": "papule", "pustules": "pustule"}
_PATCH_BOX_PX = (12, 40)
_PATCH_REACH = 2.2  # window half-side, in lesion radii
_PATCH_RING = (1.4, 2.1)  # where the surrounding skin is fitted, in lesion radii
# ...and whose window shows one clear lesion on even skin: the skin ring is smooth (robust
# spread of its log ratio; hair, eyebrows, shadows and the photo's edge fail), lit evenly,
# skin-coloured, and the lesion stands out in a* from it, more than anything on the ring does.
_PATCH_RING_SPREAD = 0.12
_PATCH_RING_GRADIENT = 0.4  # plane's change over one radius, relative to its level
_PATCH_RING_L = (35.0, 85.0)
_PATCH_RING_A = (5.0, 25.0)
_PATCH_MIN_DELTA_A = 4.0  # mean a* excess within 0.6 radii


@functools.cache
def _patch_bank(folder: str) -> tuple[LesionPatch, ...]:
    path = Path(folder)
    annotations = sorted(path.glob("*.xml"))
    if not annotations:
        raise FileNotFoundError(
            f"no annotated photos (*.xml beside *.jpg) in {path}: real lesions are cut from the "
            "ACNE04 training photos")
    bank = []
    for xml in annotations:
        boxes = voc_objects(xml)
        chosen = [i for i in range(len(boxes)) if _alone(boxes, i)]
        if not chosen:
            continue
        photo = xml.with_suffix(".jpg")
        if not photo.exists():
            continue
        bgr = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for i in chosen:
            patch = _cut_patch(rgb, boxes[i], f"{photo.name}#{i}")
            if patch is not None:
                bank.append(patch)
    return tuple(bank)


def lesion_patches(folder: Path | None = None) -> tuple[LesionPatch, ...]:
    """Real papules and pustules cut from annotated photos (cached per process).

    Parameters
    ----------
    folder : Path, optional
        Photos (``.jpg``) with Pascal VOC boxes (``.xml``) beside them, classes ``papules`` and
        ``pustules`` used; :data:`ACNE04_TRAIN` by default. Read in place.

    Returns
    -------
    tuple of LesionPatch
        In file order, then box order: the same folder always gives the same patches.

    Raises
    ------
    FileNotFoundError
        The folder holds no annotated photos.
    """
    return _patch_bank(str(Path(folder or ACNE04_TRAIN).resolve()))


def _alone(boxes: Sequence[tuple[str, float, float, float, float]], i: int) -> bool:
    name, x0, y0, x1, y1 = boxes[i]
    low, high = _PATCH_BOX_PX
    if name not in _PATCH_CLASSES or not (low <= x1 - x0 <= high and low <= y1 - y0 <= high):
        return False
    cx, cy, reach = (x0 + x1) / 2, (y0 + y1) / 2, _PATCH_REACH * (x1 - x0 + y1 - y0) / 4
    return not any(j != i and b[3] > cx - reach and b[1] < cx + reach and b[4] > cy - reach
                   and b[2] < cy + reach for j, b in enumerate(boxes))


def _cut_patch(rgb: np.ndarray, box: tuple[str, float, float, float, float],
               source: str) -> LesionPatch | None:
    """The lesion in ``box`` as a :class:`LesionPatch`, or None when it is not a clear one."""
    name, x0, y0, x1, y1 = box
    radius = (x1 - x0 + y1 - y0) / 4
    # Box corners are pixel edges: the centre in pixel-centre coordinates is half a pixel less.
    cx, cy = (x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5
    half = int(math.ceil(_PATCH_REACH * radius))
    ix, iy = int(round(cx)), int(round(cy))
    height, width = rgb.shape[:2]
    if ix - half < 0 or iy - half < 0 or ix + half >= width or iy + half >= height:
        return None
    window = rgb[iy - half:iy + half + 1, ix - half:ix + half + 1]
    lin = _srgb_to_linear(window.astype(np.float32) / 255.0)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    dx, dy = xx + (ix - cx), yy + (iy - cy)  # offsets from the lesion's centre
    d = np.hypot(dx, dy) / radius
    ring = (d >= _PATCH_RING[0]) & (d <= _PATCH_RING[1])
    design = np.c_[np.ones(int(ring.sum())), dx[ring] / radius, dy[ring] / radius]
    coef, *_ = np.linalg.lstsq(design, lin[ring].astype(np.float64), rcond=None)
    level = coef[0]
    if np.any(level <= 1e-3) or np.abs(coef[1:]).max() > _PATCH_RING_GRADIENT * level.min():
        return None
    skin = (coef[0] + coef[1] * (dx / radius)[..., None] + coef[2] * (dy / radius)[..., None])
    log_ratio = np.log(np.clip(lin / np.maximum(skin, 1e-4), 0.05, 20.0)).astype(np.float32)
    on_ring = log_ratio[ring]
    spread = 1.4826 * np.median(np.abs(on_ring - np.median(on_ring, axis=0)), axis=0)
    if spread.max() > _PATCH_RING_SPREAD:
        return None
    lab = cv2.cvtColor(window.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    ring_lab = np.median(lab[ring], axis=0)
    if not (_PATCH_RING_L[0] <= ring_lab[0] <= _PATCH_RING_L[1]
            and _PATCH_RING_A[0] <= ring_lab[1] <= _PATCH_RING_A[1]):
        return None
    excess_a = cv2.GaussianBlur(lab[..., 1], (0, 0), max(0.25 * radius, 0.8)) - ring_lab[1]
    centre_excess = float(excess_a[d <= 0.6].mean())
    if centre_excess < _PATCH_MIN_DELTA_A or excess_a[ring].max() > 0.6 * excess_a[d <= 0.6].max():
        return None
    # Re-centre the window on the lesion's exact centre (it was cut on whole pixels).
    shift = np.float32([[1, 0, ix - cx], [0, 1, iy - cy]])
    log_ratio = cv2.warpAffine(log_ratio, shift, log_ratio.shape[1::-1], flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
    log_ratio.flags.writeable = False
    return LesionPatch(log_ratio=log_ratio, radius_px=float(radius),
                       kind=_PATCH_CLASSES[name], source=source)


@dataclass(frozen=True, eq=False)
class _Placement:
    """How a real lesion is laid on the base face: which patch, turned and mirrored how."""

    patch: LesionPatch
    angle: float
    mirror: bool


def _place_patches(lesions: Sequence[PaintedLesion], bank: Sequence[LesionPatch],
                   rng: np.random.Generator) -> dict[int, _Placement]:
    """A distinct patch of the lesion's kind for each lesion (while the bank lasts)."""
    pools = {kind: [p for p in bank if p.kind == kind] for kind in ("papule", "pustule")}
    if not bank:
        raise ValueError("the lesion patch bank is empty")
    orders = {kind: list(rng.permutation(len(pool))) for kind, pool in pools.items()}
    placements = {}
    for les in lesions:
        kind = les.kind if pools[les.kind] else next(k for k in pools if pools[k])
        if not orders[kind]:
            orders[kind] = list(rng.permutation(len(pools[kind])))
        patch = pools[kind][orders[kind].pop(0)]
        placements[les.id] = _Placement(patch, float(rng.uniform(0, 2 * np.pi)),
                                        bool(rng.random() < 0.5))
    return placements


def _blend_patch(lin: np.ndarray, les: PaintedLesion, placement: _Placement,
                 strength: float) -> None:
    """Multiply the skin around ``les`` by its patch's contrast, in place (linear light).

    The patch is scaled so that its radius becomes the lesion's, turned and mirrored as placed;
    its weight is 1 out to 1.1 radii and falls smoothly to 0 at 1.9 radii.
    """
    patch = placement.patch
    k = les.radius_px / patch.radius_px  # base pixels per patch pixel
    source = patch.log_ratio
    if k < 1:  # shrinking: low-pass first, so that the resampling does not alias
        source = cv2.GaussianBlur(source, (0, 0), math.sqrt(max((0.5 / k) ** 2 - 0.25, 0.01)))
    reach = 2.0 * les.radius_px
    x0, x1 = int(max(0, les.x - reach)), int(min(lin.shape[1], les.x + reach + 1))
    y0, y1 = int(max(0, les.y - reach)), int(min(lin.shape[0], les.y + reach + 1))
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xx - les.x, yy - les.y
    c, s = math.cos(placement.angle), math.sin(placement.angle)
    u, v = (c * dx + s * dy) / k, (-s * dx + c * dy) / k
    if placement.mirror:
        u = -u
    centre = (source.shape[0] - 1) / 2
    values = cv2.remap(source, (centre + u).astype(np.float32), (centre + v).astype(np.float32),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    t = np.clip((np.hypot(dx, dy) / les.radius_px - 1.1) / 0.8, 0, 1)
    alpha = (1 - t * t * (3 - 2 * t)) * strength
    lin[y0:y1, x0:x1] *= np.exp(values * alpha[..., None])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    h = np.c_[points, np.ones(len(points))] @ matrix.T
    return h[:, :2] / h[:, 2:3]


def _displacement(bumps: Sequence[tuple[float, float, float, float, float]],
                  points: np.ndarray) -> np.ndarray:
    out = np.zeros_like(points, dtype=np.float64)
    for cx, cy, dx, dy, sigma in bumps:
        w = np.exp(-((points[:, 0] - cx) ** 2 + (points[:, 1] - cy) ** 2) / (2 * sigma**2))
        out[:, 0] += dx * w
        out[:, 1] += dy * w
    return out


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def _skin_points(rng: np.random.Generator, n: int, min_gap: float,
                 regions: dict[str, np.ndarray]) -> list[tuple[float, float]]:
    """Draw ``n`` points on the region masks, at least ``min_gap`` apart and off the edges."""
    allowed = np.zeros_like(next(iter(regions.values())))
    for mask in regions.values():
        allowed |= mask
    allowed = cv2.erode(allowed.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    ys, xs = np.nonzero(allowed)
    points: list[tuple[float, float]] = []
    for _ in range(n * 50):
        if len(points) == n:
            break
        i = rng.integers(len(xs))
        p = (float(xs[i]) + rng.uniform(-0.5, 0.5), float(ys[i]) + rng.uniform(-0.5, 0.5))
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 > min_gap**2 for q in points):
            points.append(p)
    return points


def _erythema_field(landmarks: np.ndarray, iod: float, shape: tuple[int, int]) -> np.ndarray:
    """Where post-procedure redness sits: cheeks, nose, chin and forehead, smooth, 0..1."""
    height, width = shape
    eyes = (landmarks[RIGHT_IRIS] + landmarks[LEFT_IRIS]) / 2
    u = (landmarks[LEFT_IRIS] - landmarks[RIGHT_IRIS]) / iod
    v = np.array([-u[1], u[0]])
    centres = [(-0.55, 0.75, 0.42), (0.55, 0.75, 0.42), (0.0, 0.6, 0.28), (0.0, 1.55, 0.35),
               (0.0, -0.75, 0.45)]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    field_ = np.zeros(shape, np.float32)
    for cu, cv, s in centres:
        c = eyes + (cu * u + cv * v) * iod
        field_ = np.maximum(field_, np.exp(-((xs - c[0]) ** 2 + (ys - c[1]) ** 2)
                                           / (2 * (s * iod) ** 2)))
    # Blood is in the skin only: keep the redness inside the face oval (feathered edge).
    oval = np.zeros(shape, np.float32)
    cv2.fillPoly(oval, [np.round(landmarks[list(mesh_parts()["oval"])]).astype(np.int32)], 1.0)
    oval = cv2.GaussianBlur(oval, (0, 0), 0.04 * iod)
    return field_ * oval


def _paint_skin(base: np.ndarray, erythema_field: np.ndarray, erythema: float,
                lesions: Sequence[PaintedLesion], moles: Sequence[tuple[float, float, float]],
                rng: np.random.Generator,
                placements: Mapping[int, _Placement] | None = None) -> np.ndarray:
    """Paint erythema, moles and lesions onto the base image, in linear light; float 0..1.

    With ``placements`` (by lesion id) the lesions are real patches blended in, not painted.
    """
    # The portrait is lit brightly; a notch darker leaves room for +15 % exposure.
    lin = _srgb_to_linear(base.astype(np.float32) / 255.0) * 0.85
    # Diffuse erythema: more blood absorbs green and blue, the skin reads redder.
    e = (erythema * erythema_field)[..., None]
    lin *= 1.0 - e * np.array([0.0, 0.30, 0.22], np.float32)

    def patch(x: float, y: float, reach: float) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        x0, x1 = int(max(0, x - reach)), int(min(lin.shape[1], x + reach + 1))
        y0, y1 = int(max(0, y - reach)), int(min(lin.shape[0], y + reach + 1))
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        return slice(y0, y1), slice(x0, x1), xx - x, yy - y

    for x, y, r in moles:
        sy, sx, dx, dy = patch(x, y, 2 * r)
        w = (1 / (1 + np.exp((np.hypot(dx, dy) - r) / 0.6)))[..., None]
        mole = np.array([0.10, 0.055, 0.035], np.float32)  # brown
        lin[sy, sx] = lin[sy, sx] * (1 - 0.85 * w) + mole * 0.85 * w

    for les in lesions:
        if placements is not None:
            # The same draw as a painted lesion's strength, so that both styles of one seed
            # share every other random draw (poses, light, noise); a day's patch shows at
            # 70-100 % of its contrast.
            _blend_patch(lin, les, placements[les.id], rng.uniform(0.6, 0.85) / 0.85)
            continue
        sy, sx, dx, dy = patch(les.x, les.y, 2.2 * les.radius_px)
        d = np.hypot(dx, dy) / les.radius_px
        strength = rng.uniform(0.6, 0.85)
        body = (np.exp(-1.0 * d**2) * strength)[..., None]  # ~37 % at the rim
        red = np.array([0.42, 0.07, 0.07], np.float32)
        lin[sy, sx] = lin[sy, sx] * (1 - body) + red * body
        if les.kind == "pustule":
            head = (1 / (1 + np.exp((d - 0.4) / 0.08)))[..., None] * 0.75
            pus = np.array([0.85, 0.78, 0.52], np.float32)
            lin[sy, sx] = lin[sy, sx] * (1 - head) + pus * head
    return lin


def _skin_texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Fine multiplicative skin texture (pores), the same on every day of a course."""
    noise = rng.normal(0, 1, shape).astype(np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), 1.2)
    coarse = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), 6)
    texture = 0.018 * fine / fine.std() + 0.012 * coarse / coarse.std()
    return (1.0 + texture)[..., None]


def _pose(rng: np.random.Generator, pose: PoseRange, size: int, centre: np.ndarray,
          *, neutral: bool = False) -> np.ndarray:
    if neutral:
        return np.eye(3)
    angle = np.radians(rng.uniform(-pose.roll_deg, pose.roll_deg))
    scale = 1 + rng.uniform(-pose.scale, pose.scale)
    shift = rng.uniform(-pose.shift_frac, pose.shift_frac, 2) * size
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    to_origin = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]])
    similarity = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    # Perspective: corners at +-size/2 move by about `perspective * size`.
    g = rng.uniform(-1, 1, 2) * pose.perspective * 2 / size
    perspective = np.array([[1, 0, 0], [0, 1, 0], [g[0], g[1], 1]])
    back = np.array([[1, 0, centre[0] + shift[0]], [0, 1, centre[1] + shift[1]], [0, 0, 1]])
    return back @ similarity @ perspective @ to_origin


def _expression(rng: np.random.Generator, landmarks: np.ndarray, iod: float,
                amount_iod: float) -> tuple[tuple[float, float, float, float, float], ...]:
    """A smile and a slight jaw drop as smooth displacement bumps (base coordinates)."""
    if amount_iod <= 0:
        return ()
    smile = rng.uniform(-1, 1) * amount_iod * iod
    jaw = rng.uniform(0, 1) * amount_iod * iod
    mouth_r, mouth_l, chin = landmarks[61], landmarks[291], landmarks[152]
    sigma = 0.35 * iod
    # Backward map: a photo point shows base point q + D(q); moving content outwards means
    # sampling from further in, hence the signs.
    return (
        (mouth_r[0], mouth_r[1], smile * 0.8, smile * 0.6, sigma),
        (mouth_l[0], mouth_l[1], -smile * 0.8, smile * 0.6, sigma),
        (chin[0], chin[1], 0.0, -jaw, 0.5 * iod),
    )


def make_course(seed: int, *, days: Sequence[int] = tuple(range(8)),
                treatment_date: date = date(2026, 3, 2), pose: PoseRange = DEFAULT_POSE,
                n_lesions: int = 14, pustule_fraction: float = 0.25,
                radius_px: tuple[float, float] = (3.5, 8.0), n_moles: int = 3,
                erythema: Sequence[float] | None = None,
                lesion_peak_day: int = 2, clear_by_day: int = 7,
                reference_pose_neutral: bool = False, face: str = "astronaut",
                lesion_style: str = "painted", radius_mm: tuple[float, float] | None = None,
                patches: Sequence[LesionPatch] | None = None,
                colour_card: bool = False) -> SyntheticCourse:
    """Make a seeded course of daily photos with known lesions, erythema, pose and light.

    Parameters
    ----------
    seed : int
        Everything random is drawn from ``numpy.random.default_rng(seed)``.
    days : sequence of int
        Days since treatment of the photos; the first is the reference photo.
    pose : PoseRange
        Bounds of the pose and light changes, drawn per photo.
    n_lesions : int
        Lesions painted over the course; each appears around day 1–``lesion_peak_day`` and
        clears by ``clear_by_day`` (never on day 0, the photo before the breakout).
    radius_px : (float, float)
        Range of lesion radii on the base face (~400 px wide).
    erythema : sequence of float, optional
        Painted diffuse erythema (0..1) per photo; by default a peak on day 1 decaying to a
        baseline of 0.05.
    face : str
        The face, a name in :data:`FACES` (see :func:`base_face`).
    lesion_style : str
        ``"painted"``: red Gaussian discs (pale-headed for pustules). ``"real"``: papules and
        pustules cut from annotated photos (:func:`lesion_patches`), blended onto the skin.
    radius_mm : (float, float), optional
        Range of lesion radii in millimetres at the base face's scale (its inter-ocular
        distance is 63 mm); replaces ``radius_px`` when given. Real lesions default to 1-3 mm.
    patches : sequence of LesionPatch, optional
        Real lesions to draw from; by default ``lesion_patches()`` (the ACNE04 training
        photos, which must then be present). The seed picks the patches, their turn and
        mirroring, from a stream of its own: the two styles of one seed share everything else
        (lesion places, radii, kinds and days, poses, light, noise).
    colour_card : bool
        Hold a ColorChecker Classic (:data:`monitor.imaging.colour.COLORCHECKER_SRGB`) below and
        beside the face (:func:`_paint_card`), lit like the face, in every photo. Draws
        nothing at random, so a course with the card is the same course with it.

    Returns
    -------
    SyntheticCourse

    Raises
    ------
    FileNotFoundError
        ``lesion_style="real"`` without ``patches`` and the ACNE04 training photos are absent.
    """
    if face not in FACES:
        raise ValueError(f"face must be one of {FACES}, got {face!r}")
    if lesion_style not in LESION_STYLES:
        raise ValueError(f"lesion_style must be one of {LESION_STYLES}, got {lesion_style!r}")
    if lesion_style == "real":
        patches = lesion_patches() if patches is None else tuple(patches)
        radius_mm = _REAL_RADIUS_MM if radius_mm is None else radius_mm
    rng = np.random.default_rng(seed)
    base, landmarks, iod = base_face(face)
    if radius_mm is not None:
        px_per_mm = iod / INTER_OCULAR_MM
        radius_px = (radius_mm[0] * px_per_mm, radius_mm[1] * px_per_mm)
    size = base.shape[0]
    face_ = Face(landmarks=landmarks, depth=np.zeros(478), image_shape=base.shape[:2])
    regions = face_.region_masks()
    if face != "astronaut":
        # Lesions go on skin, not on what covers it (Hopper's glasses frames lie on her
        # cheeks). The default face keeps the places it always had.
        covered = _skin_colour_weight(base, face_) < 0.5
        regions = {name: mask & ~covered for name, mask in regions.items()}
    min_gap = 2.5 * radius_px[1] + 4
    lesion_points = _skin_points(rng, n_lesions + n_moles, min_gap, regions)
    lesions = []
    for i, (x, y) in enumerate(lesion_points[:n_lesions]):
        first = int(rng.integers(1, lesion_peak_day + 1))
        last = int(rng.integers(lesion_peak_day, clear_by_day))
        kind = "pustule" if rng.random() < pustule_fraction else "papule"
        lesions.append(PaintedLesion(x, y, float(rng.uniform(*radius_px)), kind, first,
                                     max(first, last), id=i))
    moles = tuple((x, y, float(rng.uniform(2.0, 3.0))) for x, y in lesion_points[n_lesions:])
    placements = None
    if lesion_style == "real":
        assert patches is not None
        placements = _place_patches(lesions, patches, np.random.default_rng((seed, 1)))
        lesions = [replace(les, source=placements[les.id].patch.source,
                           kind=placements[les.id].patch.kind) for les in lesions]

    if erythema is None:
        erythema = [0.05 if d <= 0 else 0.05 + 0.6 * np.exp(-(d - 1) / 1.6) for d in days]
    texture = _skin_texture(base.shape[:2], rng)
    ery_field = _erythema_field(landmarks, iod, base.shape[:2])
    centre = landmarks.mean(axis=0)
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float64)
    grid = np.c_[grid_x.ravel(), grid_y.ravel()]

    photos = []
    for k, day in enumerate(days):
        visible = tuple(les for les in lesions if les.visible_on(day))
        lin = _paint_skin(base, ery_field, float(erythema[k]), visible, moles, rng,
                          placements) * texture
        if colour_card:
            _paint_card(lin)
        neutral = reference_pose_neutral and k == 0
        homography = _pose(rng, pose, size, centre, neutral=neutral)
        expression = () if neutral else _expression(rng, landmarks, iod, pose.expression_iod)
        # Backward map for remap: photo pixel x -> base point q + D(q), q = H^-1 x.
        q = _apply(np.linalg.inv(homography), grid)
        src = q + _displacement(expression, q)
        map_x = src[:, 0].reshape(size, size).astype(np.float32)
        map_y = src[:, 1].reshape(size, size).astype(np.float32)
        warped = cv2.remap(lin, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        wb = 0.0 if neutral else float(rng.uniform(-pose.white_balance, pose.white_balance))
        ex = 0.0 if neutral else float(rng.uniform(-pose.exposure, pose.exposure))
        warped *= np.array([1 + wb, 1.0, 1 - wb], np.float32) * (1 + ex)
        srgb = _linear_to_srgb(warped) * 255.0
        srgb += rng.normal(0, pose.noise_sigma, srgb.shape).astype(np.float32)
        image = np.clip(np.round(srgb), 0, 255).astype(np.uint8)
        image.flags.writeable = False
        taken = datetime.combine(treatment_date + timedelta(days=int(day)),
                                 time(8, 0)) + timedelta(minutes=int(rng.integers(0, 180)))
        photos.append(SyntheticPhoto(
            day=int(day), image=image, homography=homography, expression=expression,
            erythema=float(erythema[k]), white_balance=wb, exposure=ex, lesions=visible,
            captured_at=taken,
        ))
    return SyntheticCourse(seed=seed, treatment_date=treatment_date, photos=tuple(photos),
                           lesions=tuple(lesions), moles=moles, base_landmarks=landmarks,
                           base_inter_ocular_px=iod, face=face, lesion_style=lesion_style)


def _card_layout(size: int) -> tuple[int, int, int, int]:
    """(x0, y0, patch side, gap) of the colour card on a base image ``size`` pixels wide."""
    return round(0.05 * size), round(0.70 * size), round(0.036 * size), round(0.008 * size)


def card_corners(course: SyntheticCourse) -> np.ndarray:
    """The colour card's corners on the base image (4, 2): ``make_course(colour_card=True)``."""
    x0, y0, patch, gap = _card_layout(course.photos[0].image.shape[1])
    width, height = 6 * patch + 7 * gap, 4 * patch + 5 * gap
    return np.array([(x0, y0), (x0 + width, y0), (x0 + width, y0 + height), (x0, y0 + height)],
                    np.float64)


def _paint_card(lin: np.ndarray) -> None:
    """A ColorChecker Classic, 26 % of the image wide, in the lower left corner (linear light,
    lit as the face: the portrait's notch darker, see :func:`_paint_skin`)."""
    from monitor.imaging import COLORCHECKER_SRGB, srgb_to_linear

    x0, y0, patch, gap = _card_layout(lin.shape[1])
    height, width = 4 * patch + 5 * gap, 6 * patch + 7 * gap
    lin[y0:y0 + height, x0:x0 + width] = 0.004  # the card's black frame
    colours = srgb_to_linear(COLORCHECKER_SRGB.reshape(24, 1, 3)).reshape(24, 3) * 0.85
    for i in range(24):
        y, x = y0 + gap + (i // 6) * (patch + gap), x0 + gap + (i % 6) * (patch + gap)
        lin[y:y + patch, x:x + patch] = colours[i]


# Real lesions' radii: small papules to large pustules.
_REAL_RADIUS_MM = (1.0, 3.0)


def encode_jpeg(photo: SyntheticPhoto, *, quality: int = 92) -> bytes:
    """The photo as a JPEG with its capture time in EXIF DateTimeOriginal."""
    from PIL import Image

    exif = Image.Exif()
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd[36867] = photo.captured_at.strftime("%Y:%m:%d %H:%M:%S")
    exif[0x0110] = "Synthetic course (Breakout Monitor)"
    buffer = io.BytesIO()
    Image.fromarray(photo.image).save(buffer, "JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


def write_course(course: SyntheticCourse, folder: Path, *, prefix: str = "day") -> list[Path]:
    """Write each photo as ``{prefix}{day}.jpg`` (EXIF capture time set) and the ground truth."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    truth: dict = {"seed": course.seed, "treatment_date": course.treatment_date.isoformat()}
    # Named only when not the defaults, so that the default course's truth file stays as it was.
    if course.face != "astronaut":
        truth["face"] = course.face
    if course.lesion_style != "painted":
        truth["lesion_style"] = course.lesion_style
    truth["photos"] = []
    for photo in course.photos:
        path = folder / f"{prefix}{photo.day}.jpg"
        path.write_bytes(encode_jpeg(photo))
        paths.append(path)
        truth["photos"].append({
            "file": path.name, "day": photo.day, "erythema": round(photo.erythema, 4),
            "white_balance": round(photo.white_balance, 4), "exposure": round(photo.exposure, 4),
            "lesions": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in les.items()}
                        for les in photo.lesions_in_photo()],
        })
    # The truth sits in a subfolder: `analyze FOLDER` considers every file directly inside it.
    (folder / "ground_truth").mkdir(exist_ok=True)
    (folder / "ground_truth" / "course.json").write_text(json.dumps(truth, indent=1) + "\n")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Write the bundled sample course: ``python -m monitor.testing sample_images``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m monitor.testing", description=main.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=20260302)  # monitor.testing.demo.SAMPLE_SEED
    parser.add_argument("--face", choices=FACES, default="astronaut")
    parser.add_argument("--lesion-style", choices=LESION_STYLES, default="painted")
    args = parser.parse_args(argv)
    course = make_course(args.seed, face=args.face, lesion_style=args.lesion_style)
    for path in write_course(course, args.folder):
        print(path)
    return 0
