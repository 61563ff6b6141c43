"""Repeatability of the whole-face path: the same skin photographed again gives the same figures.

Real faces of the ACNE04 dev split (by default the first 3 per severity grade, by file name, in
which the whole-face path finds a face) are each photographed again five times, with nothing on
the skin changed and only the capture: roll, distance (scale), a slight perspective, white
balance and exposure (gains in linear light) and JPEG quality (:func:`reshoot`). The five
re-shoots are analysed as a course on five consecutive days
(:func:`monitor.pipeline.analyse_series`, no treatment date), and every change the analysis
reports is an error:

- photos accepted, out of 5 (target: all);
- lesion count spread, ``(max - min) / max(median, 5)`` over the accepted photos of a course
  (target: mean over courses <= 0.15, worst <= 0.30);
- false tracks: lesion tracks (``trend["tracks"]``) that start after the first tracked day or
  end before the last one (``first_day`` after, or ``last_day`` before, the first and last days
  of ``trend["series"]`` whose ``new`` is not null); the skin did not change, so every lesion
  seen should be followed from the first photo to the last (target: at most 1 per course).
  The turnover events of the per-day series (``new`` on the days after the first plus
  ``resolved`` on every day) are printed beside them: a lesion seen on one middle day only is
  one false track and two events;
- mean ``|redness index|`` (CIELAB a* above the reference photo's skin) over the accepted
  photos other than the reference (target: <= 0.5).

The course status (``trend["status"]``) is printed for each course; a face with at least
:data:`MANY_LESIONS` spots (median count) whose unchanged course is called ``resolved`` is
marked, but it is not a target.

Re-shoot 0 is the course's reference (the earliest photo). It is perturbed too, at
:data:`FIRST_RESHOOT_STRENGTH` of the ranges, rather than being the photo as downloaded: every
photo of the course then went through the same resampling and recompression, so none is
special for having skipped them, and the reference is a typical good photo that the later ones
vary around, as a patient's later selfies vary around the first. Each face has its own fixed
seed (from its file name), so a face gets the same re-shoots whichever subset is run.

    .venv/bin/python benchmarks/repeatability.py [DATA_DIR] [--per-grade N] [--reshoots N]
        [--held-out]

DATA_DIR defaults to ``../shared/data/acne04-dev`` beside the repository; the photos are read
in place and the re-shoots written to a temporary folder. Progress goes to stderr; the exit
status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from closeup_accuracy import photo_pairs, severity_grade  # noqa: E402
from face_accuracy import HELD_OUT_HELP, held_out  # noqa: E402

from monitor.imaging import linear_to_srgb, srgb_to_linear  # noqa: E402
from monitor.progress import print_progress  # noqa: E402

DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data" / "acne04-dev"

FACES_PER_GRADE = 3
N_RESHOOTS = 5
#: Mixed with a checksum of each face's file name into that face's generator.
SEED = 20260101
#: Day 0 of every course; re-shoot k is taken on day k.
FIRST_DAY = datetime(2026, 1, 1)

# A re-shoot at strength 1 draws each change uniformly within these bounds.
#: In-plane rotation, degrees either way.
MAX_ROLL_DEG = 10.0
#: Relative change of scale (distance to the camera), either way.
MAX_SCALE_CHANGE = 0.12
#: Shift of each image corner for the perspective, as a fraction of the side, either way.
MAX_CORNER_SHIFT = 0.025
#: Relative change of the red and of the blue gain (white balance) in linear light.
MAX_WHITE_BALANCE_CHANGE = 0.10
#: Relative change of exposure (all three gains) in linear light.
MAX_EXPOSURE_CHANGE = 0.12
#: JPEG quality, both ends included.
JPEG_QUALITY = (86, 95)
#: Strength of re-shoot 0, the course's reference (see the module docstring).
FIRST_RESHOOT_STRENGTH = 0.25
#: What fills the corners the warp uncovers: the photo's edge mirrored (no black wedges; on a
#: close-up, skin near the edge is mirrored too, where a real re-shoot would show new skin).
BORDER = cv2.BORDER_REFLECT101

TARGET_MEAN_SPREAD = 0.15
TARGET_WORST_SPREAD = 0.30
TARGET_FALSE_TRACKS = 1  # per course, at most
TARGET_REDNESS = 0.5  # mean |redness index|, CIELAB a*
#: The smallest median a spread is taken relative to, so that 1 -> 2 spots is not 100 %.
SPREAD_FLOOR = 5
#: A face with at least this many spots (median count) should not be called resolved.
MANY_LESIONS = 10
#: Course statuses that say the breakout is over.
SETTLED_STATUSES = ("resolved",)

#: ``progress(done, total, file_name, status)``, as :func:`monitor.pipeline.analyse_series`.
Progress = Callable[[int, int, str, str], None]


# --------------------------------------------------------------------------------------------
# Re-shoots
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReshootParams:
    """The capture changes of one re-shoot.

    Attributes
    ----------
    roll_deg : float
        In-plane rotation about the image centre, degrees (counter-clockwise on screen).
    scale : float
        Magnification about the image centre (1 = unchanged).
    corner_shift : tuple of 4 (float, float)
        Shift of the top-left, top-right, bottom-right and bottom-left image corners, x and y as
        fractions of the width and height: the perspective change, applied after roll and scale.
    red_gain, blue_gain : float
        White-balance gains of the red and blue channels in linear light (1 = unchanged).
    exposure : float
        Gain of all three channels in linear light (1 = unchanged).
    jpeg_quality : int
        Quality the re-shoot is saved at (1-100).
    """

    roll_deg: float = 0.0
    scale: float = 1.0
    corner_shift: tuple[tuple[float, float], ...] = ((0.0, 0.0),) * 4
    red_gain: float = 1.0
    blue_gain: float = 1.0
    exposure: float = 1.0
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        shift = np.asarray(self.corner_shift, dtype=np.float64)
        if shift.shape != (4, 2) or not np.all(np.isfinite(shift)):
            raise ValueError(
                f"corner_shift must be 4 finite (x, y) pairs, got {self.corner_shift!r}"
            )
        for name in ("scale", "red_gain", "blue_gain", "exposure"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1-100, got {self.jpeg_quality!r}")

    def homography(self, width: int, height: int) -> np.ndarray:
        """The (3, 3) map from photo pixels (x, y) to re-shoot pixels, for a photo of that size."""
        cx, cy = (width - 1) / 2, (height - 1) / 2
        theta = math.radians(self.roll_deg)
        c, s = self.scale * math.cos(theta), self.scale * math.sin(theta)
        # Counter-clockwise on screen, where y points down.
        similarity = np.array(
            [[c, s, cx - c * cx - s * cy], [-s, c, cy + s * cx - c * cy], [0.0, 0.0, 1.0]]
        )
        corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
        moved = corners + np.asarray(self.corner_shift, np.float32) * np.float32([width, height])
        perspective = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
        return perspective @ similarity


def draw_reshoot(rng: np.random.Generator, *, strength: float = 1.0) -> ReshootParams:
    """Capture changes drawn uniformly within the bounds above, times ``strength`` (0 = none).

    The same numbers are drawn from ``rng`` whatever ``strength`` is; the JPEG quality is not
    scaled.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be between 0 and 1, got {strength!r}")

    def either_way(bound: float, size: int | tuple[int, ...] | None = None):
        return strength * rng.uniform(-bound, bound, size)

    roll = either_way(MAX_ROLL_DEG)
    scale = 1 + either_way(MAX_SCALE_CHANGE)
    shift = either_way(MAX_CORNER_SHIFT, (4, 2))
    red = 1 + either_way(MAX_WHITE_BALANCE_CHANGE)
    blue = 1 + either_way(MAX_WHITE_BALANCE_CHANGE)
    exposure = 1 + either_way(MAX_EXPOSURE_CHANGE)
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    return ReshootParams(
        roll_deg=float(roll),
        scale=float(scale),
        corner_shift=tuple((float(x), float(y)) for x, y in shift),
        red_gain=float(red),
        blue_gain=float(blue),
        exposure=float(exposure),
        jpeg_quality=quality,
    )


def apply_reshoot(rgb: np.ndarray, params: ReshootParams) -> np.ndarray:
    """The photo as taken again with ``params``: gains in linear light, then the warp.

    Parameters
    ----------
    rgb : ndarray of shape (M, N, 3), uint8
        sRGB photo.

    Returns
    -------
    ndarray of shape (M, N, 3), uint8
        The same size; the corners the warp uncovers are filled as :data:`BORDER` says, so
        that no black wedges appear. Neutral parameters return the photo unchanged.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image of shape (M, N, 3), got {rgb.dtype} "
                         f"of shape {rgb.shape}")
    gains = np.float32(params.exposure) * np.array(
        [params.red_gain, 1.0, params.blue_gain], np.float32)
    linear = srgb_to_linear(rgb) * gains
    # Highlights clip as a camera's would.
    srgb = (linear_to_srgb(linear) * np.float32(255) + np.float32(0.5)).astype(np.uint8)
    h, w = rgb.shape[:2]
    return cv2.warpPerspective(srgb, params.homography(w, h), (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=BORDER)


def reshoot(rgb: np.ndarray, rng: np.random.Generator, *,
            strength: float = 1.0) -> tuple[np.ndarray, ReshootParams]:
    """The photo taken again with capture changes drawn from ``rng`` (:func:`draw_reshoot`).

    Returns the re-shoot (same shape, uint8, not yet JPEG-compressed) and its parameters; save
    it at ``params.jpeg_quality``. ``strength=0`` returns the photo unchanged.
    """
    params = draw_reshoot(rng, strength=strength)
    return apply_reshoot(rgb, params), params


def face_rng(path: str | Path, seed: int = SEED) -> np.random.Generator:
    """The generator of a face's re-shoots, fixed by its file name."""
    return np.random.default_rng([seed, zlib.crc32(Path(path).name.encode())])


def face_name(path: str | Path) -> str:
    """A short name of an ACNE04 photo: ``levle0_113`` for ``levle0_113_jpg.rf.c03f....jpg``."""
    return Path(path).stem.split("_jpg")[0]


def write_reshoots(path: str | Path, folder: Path, *, n: int = N_RESHOOTS,
                   seed: int = SEED) -> tuple[list[Path], list[ReshootParams]]:
    """Write ``n`` re-shoots of the photo at ``path`` into ``folder`` as JPEGs.

    Re-shoot 0 is drawn at :data:`FIRST_RESHOOT_STRENGTH`, the others at full strength.
    """
    rgb = np.asarray(Image.open(path).convert("RGB"))
    rng = face_rng(path, seed)
    paths, params = [], []
    for k in range(n):
        shot, p = reshoot(rgb, rng, strength=FIRST_RESHOOT_STRENGTH if k == 0 else 1.0)
        out = Path(folder) / f"{face_name(path)}_reshoot{k}.jpg"
        Image.fromarray(shot).save(out, format="JPEG", quality=p.jpeg_quality)
        paths.append(out)
        params.append(p)
    return paths, params


# --------------------------------------------------------------------------------------------
# Scoring a course
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CourseRow:
    """One face's course of re-shoots as the analysis read it.

    ``counts`` and ``statuses`` are in re-shoot order (``None`` counts for rejected photos);
    ``redness`` holds the redness index of each accepted photo other than the reference.
    """

    file: str
    grade: int
    statuses: tuple[str, ...]
    reasons: tuple[str | None, ...]
    counts: tuple[int | None, ...]
    false_tracks: int
    turnover: int
    n_tracks: int
    redness: tuple[float, ...]
    course_status: str
    seconds: float = 0.0
    reshoots: tuple[ReshootParams, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.statuses)
        if len(self.counts) != n or len(self.reasons) != n:
            raise ValueError(
                f"{self.file}: one status, reason and count per photo, got {n} statuses, "
                f"{len(self.reasons)} reasons and {len(self.counts)} counts"
            )

    @property
    def n_photos(self) -> int:
        return len(self.statuses)

    @property
    def accepted(self) -> int:
        return sum(status == "ok" for status in self.statuses)

    @property
    def accepted_counts(self) -> tuple[int, ...]:
        return tuple(c for s, c in zip(self.statuses, self.counts, strict=True)
                     if s == "ok" and c is not None)

    @property
    def median_count(self) -> float:
        counts = self.accepted_counts
        return float(np.median(counts)) if counts else float("nan")

    @property
    def spread(self) -> float:
        """``(max - min) / max(median, SPREAD_FLOOR)`` of the accepted counts; nan if none."""
        counts = self.accepted_counts
        if not counts:
            return float("nan")
        return (max(counts) - min(counts)) / max(self.median_count, SPREAD_FLOOR)

    @property
    def mean_abs_redness(self) -> float:
        return float(np.mean(np.abs(self.redness))) if self.redness else float("nan")

    @property
    def settled_with_many(self) -> bool:
        """Called settled (:data:`SETTLED_STATUSES`) with at least :data:`MANY_LESIONS` spots."""
        return self.course_status in SETTLED_STATUSES and self.median_count >= MANY_LESIONS


def false_tracks(trend: Mapping) -> tuple[int, int, int]:
    """(false tracks, turnover events, tracks) of a ``trend`` of unchanged skin.

    A track of ``trend["tracks"]`` is false when it is reported new (its ``first_day`` is
    after the first tracked day) or resolved (its ``resolved_day`` is not null); the tracked
    days are those of ``trend["series"]`` whose ``new`` is not null. A track whose place was
    out of view on the last days is neither. The turnover events are ``new`` summed over the
    tracked days after the first plus ``resolved`` summed over all of them.
    """
    tracked = [d for d in trend.get("series") or [] if d.get("new") is not None]
    tracks = trend.get("tracks") or []
    if not tracked:
        return 0, 0, len(tracks)
    first = tracked[0]["day"]
    false = sum(1 for t in tracks if t["first_day"] > first or t["resolved_day"] is not None)
    events = sum(d["new"] for d in tracked[1:]) + sum(d["resolved"] or 0 for d in tracked)
    return false, events, len(tracks)


def score_course(analysis: Mapping, *, file: str, grade: int = -1, seconds: float = 0.0,
                 reshoots: Sequence[ReshootParams] = (),
                 order: Sequence[str] | None = None) -> CourseRow:
    """Score the ``monitor.analysis/1`` result of one face's re-shoots.

    Parameters
    ----------
    analysis : mapping
        The result of :func:`monitor.pipeline.analyse_series`: ``photos`` (``file``,
        ``status``, ``reason``, ``lesion_count``, ``redness``), ``reference`` (a file name)
        and ``trend`` (``status``, ``series``, ``tracks``).
    order : sequence of str, optional
        File names in re-shoot order; by default the order of ``analysis["photos"]`` (by time).
    """
    photos = list(analysis["photos"])
    if order is not None:
        by_file = {p["file"]: p for p in photos}
        photos = [by_file[name] for name in order]
    reference = analysis.get("reference")
    redness = []
    for p in photos:
        index = (p.get("redness") or {}).get("index")
        if p["status"] == "ok" and p["file"] != reference and index is not None:
            redness.append(float(index))
    trend = analysis["trend"]
    false, events, n_tracks = false_tracks(trend)
    return CourseRow(
        file=file,
        grade=grade,
        statuses=tuple(p["status"] for p in photos),
        reasons=tuple(p.get("reason") for p in photos),
        counts=tuple(p.get("lesion_count") if p["status"] == "ok" else None for p in photos),
        false_tracks=false,
        turnover=events,
        n_tracks=n_tracks,
        redness=tuple(redness),
        course_status=str(trend.get("status")),
        seconds=seconds,
        reshoots=tuple(reshoots),
    )


# --------------------------------------------------------------------------------------------
# Figures over faces
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Repeatability:
    """Repeatability figures over the courses of re-shoots of several faces.

    A figure over no course (or over a course without an accepted photo) is nan, and a nan
    misses its target.
    """

    rows: tuple[CourseRow, ...]

    @property
    def n_photos(self) -> int:
        return sum(row.n_photos for row in self.rows)

    @property
    def accepted(self) -> int:
        return sum(row.accepted for row in self.rows)

    @property
    def all_accepted(self) -> bool:
        return self.accepted == self.n_photos

    @property
    def mean_spread(self) -> float:
        return float(np.mean([row.spread for row in self.rows])) if self.rows else math.nan

    @property
    def worst_spread(self) -> float:
        spreads = [row.spread for row in self.rows]
        if not spreads or any(math.isnan(s) for s in spreads):
            return math.nan
        return float(max(spreads))

    @property
    def mean_false_tracks(self) -> float:
        return float(np.mean([row.false_tracks for row in self.rows])) if self.rows else math.nan

    @property
    def max_false_tracks(self) -> int:
        return max((row.false_tracks for row in self.rows), default=0)

    @property
    def mean_abs_redness(self) -> float:
        """Over every accepted photo other than its course's reference, pooled."""
        values = [abs(v) for row in self.rows for v in row.redness]
        return float(np.mean(values)) if values else math.nan

    @property
    def course_statuses(self) -> Counter[str]:
        return Counter(row.course_status for row in self.rows)

    @property
    def rejections(self) -> Counter[str]:
        """Rejected re-shoots counted by the reason given."""
        return Counter(reason or "(no reason given)" for row in self.rows
                       for status, reason in zip(row.statuses, row.reasons, strict=True)
                       if status != "ok")

    def missed_targets(self) -> list[str]:
        """The targets missed, each as a short sentence; empty when all are met."""
        missed = []
        if not self.rows:
            return ["no course was analysed"]
        if not self.all_accepted:
            missed.append(f"photos accepted {self.accepted}/{self.n_photos}")
        if not self.mean_spread <= TARGET_MEAN_SPREAD:
            missed.append(f"mean spread {self.mean_spread:.3f} > {TARGET_MEAN_SPREAD}")
        if not self.worst_spread <= TARGET_WORST_SPREAD:
            missed.append(f"worst spread {self.worst_spread:.3f} > {TARGET_WORST_SPREAD}")
        if self.max_false_tracks > TARGET_FALSE_TRACKS:
            over = sum(row.false_tracks > TARGET_FALSE_TRACKS for row in self.rows)
            missed.append(f"{over} course(s) with more than {TARGET_FALSE_TRACKS} false track "
                          f"(max {self.max_false_tracks})")
        if not self.mean_abs_redness <= TARGET_REDNESS:
            missed.append(f"mean |redness index| {self.mean_abs_redness:.2f} > {TARGET_REDNESS}")
        return missed

    def summary(self) -> str:
        return (
            f"courses {len(self.rows)}  accepted {self.accepted}/{self.n_photos}  "
            f"spread mean {self.mean_spread:.3f} worst {self.worst_spread:.3f}  "
            f"false tracks mean {self.mean_false_tracks:.2f} max {self.max_false_tracks}  "
            f"|redness| {self.mean_abs_redness:.2f} a*"
        )


def select_faces(pairs: Sequence[tuple[Path, Path]] | Sequence[Path], *,
                 per_grade: int = FACES_PER_GRADE,
                 progress: Progress | None = None) -> list[Path]:
    """The first ``per_grade`` photos of each severity grade, by file name, with a face found.

    A face is found when :func:`monitor.pipeline.analyse_series` accepts the photo alone.
    ``pairs`` may be (image, annotation) pairs or image paths. Photos without a grade in their
    name are left out; a grade with fewer such photos gives what it has.
    """
    from monitor.pipeline import analyse_series

    images = sorted((Path(p[0]) if isinstance(p, tuple) else Path(p) for p in pairs),
                    key=lambda p: p.name)
    by_grade: dict[int, list[Path]] = {}
    for img in images:
        if severity_grade(img) >= 0:
            by_grade.setdefault(severity_grade(img), []).append(img)
    chosen = []
    for grade in sorted(by_grade):
        found = 0
        for img in by_grade[grade]:
            if found == per_grade:
                break
            status = analyse_series([img])["photos"][0]["status"]
            if progress:
                progress(len(chosen) + 1, per_grade * len(by_grade), img.name,
                         "face" if status == "ok" else "no face")
            if status == "ok":
                chosen.append(img)
                found += 1
    return chosen


def repeatability(paths_by_face: Sequence[str | Path], progress: Progress | None = None, *,
                  n_reshoots: int = N_RESHOOTS, seed: int = SEED) -> Repeatability:
    """Analyse ``n_reshoots`` re-shoots of each face's photo as a course, and score them.

    Parameters
    ----------
    paths_by_face : sequence of path
        One photo per face (an ACNE04 file; its grade is read from the name).
    progress : callable, optional
        ``progress(done, total, file_name, status)`` after each step of each re-shoot (two
        steps per re-shoot, as :func:`monitor.pipeline.analyse_series` reports them).
    """
    from monitor.pipeline import analyse_series

    if n_reshoots < 1:
        raise ValueError(f"n_reshoots must be at least 1, got {n_reshoots}")
    paths = [Path(p) for p in paths_by_face]
    total = 2 * n_reshoots * len(paths)
    rows = []
    for i, path in enumerate(paths):
        offset = 2 * n_reshoots * i

        def step(done: int, _total: int, name: str, status: str, offset: int = offset) -> None:
            if progress:
                progress(offset + done, total, name, status)

        with tempfile.TemporaryDirectory(prefix="reshoots-") as folder:
            shots, params = write_reshoots(path, Path(folder), n=n_reshoots, seed=seed)
            days = {p.name: FIRST_DAY + timedelta(days=k) for k, p in enumerate(shots)}
            t0 = time.perf_counter()
            analysis = analyse_series(shots, captured_at=days, progress=step)
            seconds = time.perf_counter() - t0
        rows.append(score_course(analysis, file=path.name, grade=severity_grade(path),
                                 seconds=seconds, reshoots=params,
                                 order=[p.name for p in shots]))
    return Repeatability(rows=tuple(rows))


def report(rep: Repeatability) -> str:
    """The figures as printed by the script."""
    lines = [f"{'face':12s} {'grade':>5s}  {'ok':3s}  {'counts':20s} {'spread':>6s}  "
             f"{'false':>5s} {'(events/tracks)':15s}  {'|redness|':>9s}  course"]
    for row in rep.rows:
        counts = " ".join("-" if c is None else str(c) for c in row.counts)
        flag = f"  << called {row.course_status} with {row.median_count:g} spots" \
            if row.settled_with_many else ""
        lines.append(
            f"{face_name(row.file):12s} {row.grade:5d}  {row.accepted}/{row.n_photos}  "
            f"{counts:20s} {row.spread:6.3f}  {row.false_tracks:5d} "
            f"{f'({row.turnover}/{row.n_tracks})':15s}  {row.mean_abs_redness:9.2f}  "
            f"{row.course_status}{flag}"
        )
    rejected = rep.rejections
    if rejected:
        lines.append(f"rejected re-shoots  {sum(rejected.values())}, by reason:")
        lines += [f"  {n:3d}  {reason}" for reason, n in rejected.most_common()]
    lines += [
        f"all accepted        {'yes' if rep.all_accepted else 'no'} "
        f"({rep.accepted}/{rep.n_photos})",
        f"count spread        mean {rep.mean_spread:.3f}, worst {rep.worst_spread:.3f}",
        f"false tracks        mean {rep.mean_false_tracks:.2f}, max {rep.max_false_tracks} "
        "per course",
        f"|redness index|     mean {rep.mean_abs_redness:.2f} a*",
        "course status       " + ", ".join(f"{s} {n}" for s, n in
                                           rep.course_statuses.most_common()),
    ]
    settled = [row for row in rep.rows if row.settled_with_many]
    if settled:
        lines.append(f"called {'/'.join(SETTLED_STATUSES)} with >= {MANY_LESIONS} spots: "
                     f"{len(settled)} course(s)")
    seconds = sum(row.seconds for row in rep.rows)
    lines.append(f"time                {seconds / max(rep.n_photos, 1):.2f} s per re-shoot")
    missed = rep.missed_targets()
    lines.append(
        f"targets (all accepted, spread mean <= {TARGET_MEAN_SPREAD} and worst <= "
        f"{TARGET_WORST_SPREAD}, <= {TARGET_FALSE_TRACKS} false track per course, "
        f"|redness| <= {TARGET_REDNESS}): "
        + ("met" if not missed else "MISSED: " + "; ".join(missed))
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder of ACNE04 .jpg photos with Pascal VOC .xml beside them")
    parser.add_argument("--per-grade", type=int, default=FACES_PER_GRADE,
                        help="faces per severity grade (the first by file name with a face)")
    parser.add_argument("--reshoots", type=int, default=N_RESHOOTS,
                        help="re-shoots per face, analysed as one course")
    parser.add_argument("--held-out", action="store_true", help=HELD_OUT_HELP)
    args = parser.parse_args(argv[1:])
    pairs = photo_pairs(args.data_dir)
    if args.held_out:
        pairs = held_out(pairs)
    if not pairs:
        print(f"no .jpg with a .xml beside it in {args.data_dir}", file=sys.stderr)
        return 2
    print("choosing faces ...", file=sys.stderr)
    faces = select_faces(pairs, per_grade=args.per_grade, progress=print_progress)
    if not faces:
        print(f"no photo in {args.data_dir} with a face found", file=sys.stderr)
        return 2
    print(f"re-shooting {len(faces)} faces {args.reshoots} times ...", file=sys.stderr)
    rep = repeatability(faces, progress=print_progress, n_reshoots=args.reshoots)
    print(report(rep))
    return 1 if rep.missed_targets() else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
