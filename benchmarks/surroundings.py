"""A change of room: does the redness index hold when only the surroundings of the face change?

Each seeded synthetic course (:func:`monitor.testing.synthetic.make_course`, the four faces of
:data:`monitor.testing.synthetic.FACES`) is analysed twice through the path of ``python -m monitor
analyze``: as made, and with the surroundings of the face tinted on every other day (odd
days) by gains of up to ±20 % per channel in linear light, drawn per photo (another wall,
another top), the face and the hair around it (within :data:`KEPT_IOD` pupil distances of the
face oval) untouched. The skin did not change, so the redness index should not move.

With ``--card`` every photo also shows a colour card (ColorChecker Classic, painted by
``make_course(colour_card=True)``) and is analysed with ``colour_card=True``; the light of
each photo is tinted too (white balance and exposure within ±15 %), and the redness index of
every photo is compared with that of the same course under unchanged light and surroundings.

Issue #14's target, both ways: at most 0.3 a* on every photo. Prints each compared photo,
which colour sources the analysis used, and the figures; exits 1 when the target is missed.

    .venv/bin/python benchmarks/surroundings.py [--card] [--seeds 51 52] [--days 6]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.imaging import (  # noqa: E402
    linear_to_srgb,
    mesh_parts,  # noqa: E402
    srgb_to_linear,
)
from monitor.pipeline import analyse_series  # noqa: E402
from monitor.testing import (  # noqa: E402
    FACES,
    PoseRange,
    SyntheticCourse,
    card_corners,
    make_course,
    write_course,
)

TARGET_A_STAR = 0.3
TINT = 0.20
KEPT_IOD = 0.35


def head_mask(course: SyntheticCourse, day_index: int) -> np.ndarray:
    """The face oval and everything within KEPT_IOD pupil distances of it, in the photo."""
    photo = course.photos[day_index]
    oval = photo.to_photo(course.base_landmarks[list(mesh_parts()["oval"])])
    iod = course.base_inter_ocular_px * float(np.sqrt(abs(np.linalg.det(photo.homography[:2,
                                                                                          :2]))))
    inside = np.zeros(photo.image.shape[:2], np.uint8)
    hull = cv2.convexHull(oval.astype(np.float32))[:, 0]
    cv2.fillConvexPoly(inside, np.round(hull).astype(np.int32), 1)
    return cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3) <= KEPT_IOD * iod


def tint_surroundings(course: SyntheticCourse, rng: np.random.Generator, *,
                      card: bool = False) -> SyntheticCourse:
    """The course with the surroundings of every odd day's photo tinted (linear gains); with
    ``card``, the colour card held in them is left as it is (a wall changes, not the card)."""
    photos = []
    for k, photo in enumerate(course.photos):
        if k % 2 == 1:
            gains = (1 + rng.uniform(-TINT, TINT, 3)).astype(np.float32)
            linear = srgb_to_linear(photo.image)
            kept = head_mask(course, k)
            if card:
                corners = photo.to_photo(card_corners(course))
                held = np.zeros(kept.shape, np.uint8)
                cv2.fillConvexPoly(held, np.round(corners).astype(np.int32), 1)
                kept = kept | held.astype(bool)
            kept = kept[..., None]
            linear = np.where(kept, linear, linear * gains)
            image = np.round(linear_to_srgb(linear) * 255).astype(np.uint8)
            photo = replace(photo, image=image)
        photos.append(photo)
    return replace(course, photos=tuple(photos))


def read(course: SyntheticCourse, *, colour_card: bool = False) -> dict[str, dict]:
    """The analysis entries of a course, by file name."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "course"
        write_course(course, folder)
        analysis = analyse_series([folder], treatment_date=course.treatment_date, strict=True,
                                  colour_card=colour_card)
    return {p["file"]: p for p in analysis["photos"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[51, 52])
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--card", action="store_true",
                        help="a colour card in every photo, and a tinted light as well")
    args = parser.parse_args(argv)
    moved, untrusted = [], 0
    days = tuple(range(args.days))
    for face in FACES:
        for seed in args.seeds:
            if args.card:
                still = PoseRange(white_balance=0.0, exposure=0.0)
                lit = PoseRange(white_balance=0.15, exposure=0.15)
                plain = read(make_course(seed, days=days, face=face, pose=still,
                                         colour_card=True), colour_card=True)
                course = make_course(seed, days=days, face=face, pose=lit, colour_card=True)
                tinted = read(tint_surroundings(course, np.random.default_rng(seed),
                                                card=True), colour_card=True)
                compared = sorted(tinted, key=lambda n: int(n[3:-4]))[1:]
            else:
                course = make_course(seed, days=days, face=face)
                plain = read(course)
                tinted = read(tint_surroundings(course, np.random.default_rng(seed)))
                compared = sorted(tinted, key=lambda n: int(n[3:-4]))[1::2]
            for name in compared:
                before = (plain[name].get("redness") or {}).get("index")
                entry = tinted[name]
                after = (entry.get("redness") or {}).get("index")
                used = [s["name"] for s in entry["colour"].get("sources", []) if s["used"]]
                if after is None or before is None:
                    untrusted += 1
                    print(f"{face:>14} seed {seed} {name}: redness not measured ({used})")
                    continue
                moved.append(after - before)
                print(f"{face:>14} seed {seed} {name}: index {before:+.2f} -> {after:+.2f}"
                      f" ({after - before:+.2f} a*), sources used {used}")
    worst = float(np.max(np.abs(moved)))
    what = "lit and tinted photos with a card" if args.card else "tinted photos"
    print(f"{len(moved)} {what}: redness index moved by at most {worst:.2f} a*, mean"
          f" {float(np.mean(np.abs(moved))):.2f} a*; {untrusted} not measured; target <="
          f" {TARGET_A_STAR} a* on every photo: {'met' if worst <= TARGET_A_STAR else 'MISSED'}")
    return 0 if worst <= TARGET_A_STAR else 1


if __name__ == "__main__":
    raise SystemExit(main())
