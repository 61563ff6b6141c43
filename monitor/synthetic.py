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
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

import cv2
import numpy as np

from monitor.face import _LEFT_IRIS, _RIGHT_IRIS, Face, _topology, find_face

__all__ = [
    "PaintedLesion",
    "SyntheticPhoto",
    "SyntheticCourse",
    "PoseRange",
    "base_face",
    "make_course",
    "write_course",
]

_BASE_SIZE = 1100  # the base image is the astronaut's head, upscaled to a ~400 px wide face
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
             "id": les.id}
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

    def correspondence(self, day_from: int, day_to: int,
                       points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The same face points in two photos: (N, 2) in ``day_from``'s and ``day_to``'s pixels."""
        points = self.base_landmarks if points is None else points
        by_day = {p.day: p for p in self.photos}
        return by_day[day_from].to_photo(points), by_day[day_to].to_photo(points)


def base_face() -> tuple[np.ndarray, np.ndarray, float]:
    """The base portrait, its landmarks and inter-ocular distance (cached per process)."""
    global _BASE
    if _BASE is None:
        import skimage.data

        portrait = skimage.data.astronaut()
        r0, r1, c0, c1 = _CROP
        image = cv2.resize(portrait[r0:r1, c0:c1], (_BASE_SIZE, _BASE_SIZE),
                           interpolation=cv2.INTER_CUBIC)
        face = find_face(image)
        image.flags.writeable = False
        _BASE = (image, face.landmarks, face.inter_ocular_px)
    return _BASE


_BASE: tuple[np.ndarray, np.ndarray, float] | None = None


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
    eyes = (landmarks[_RIGHT_IRIS] + landmarks[_LEFT_IRIS]) / 2
    u = (landmarks[_LEFT_IRIS] - landmarks[_RIGHT_IRIS]) / iod
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
    cv2.fillPoly(oval, [np.round(landmarks[list(_topology()["oval"])]).astype(np.int32)], 1.0)
    oval = cv2.GaussianBlur(oval, (0, 0), 0.04 * iod)
    return field_ * oval


def _paint_skin(base: np.ndarray, erythema_field: np.ndarray, erythema: float,
                lesions: Sequence[PaintedLesion], moles: Sequence[tuple[float, float, float]],
                rng: np.random.Generator) -> np.ndarray:
    """Paint erythema, moles and lesions onto the base image, in linear light; float 0..1."""
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
                reference_pose_neutral: bool = False) -> SyntheticCourse:
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

    Returns
    -------
    SyntheticCourse
    """
    rng = np.random.default_rng(seed)
    base, landmarks, iod = base_face()
    size = base.shape[0]
    face = Face(landmarks=landmarks, depth=np.zeros(478), image_shape=base.shape[:2])
    regions = face.region_masks()
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
        lin = _paint_skin(base, ery_field, float(erythema[k]), visible, moles, rng) * texture
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
                           base_inter_ocular_px=iod)


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
    truth = {"seed": course.seed, "treatment_date": course.treatment_date.isoformat(),
             "photos": []}
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
    """Write the bundled sample course: ``python -m monitor.synthetic sample_images``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=20260302)
    args = parser.parse_args(argv)
    course = make_course(args.seed)
    for path in write_course(course, args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
