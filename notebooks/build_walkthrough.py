"""Build and execute notebooks/sample_course_walkthrough.ipynb (the sample course, step by step).

    .venv/bin/python notebooks/build_walkthrough.py          # writes the executed notebook

The cells are kept here, as plain text, so that the notebook is reviewed like code; the
executed .ipynb (with its pictures) is committed for reading on any viewer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
OUT = HERE / "sample_course_walkthrough.ipynb"

CELLS = [
    ("md", """# The sample course, step by step

This notebook walks the bundled sample course (`sample_images/`, 8 daily selfies from day 0,
before the breakout, to day 7) through every step of Breakout Monitor, with pictures, and prints
how close each step comes to the ground truth that made the photos.

The photos are synthetic: scikit-image's public-domain astronaut portrait with painted papules,
pustules, diffuse erythema and moles, photographed under a different pose and light each day
(`monitor/testing/synthetic.py`). Because everything painted is known, every figure below is checked."""),
    ("code", """%matplotlib inline
%config InlineBackend.figure_format = "jpeg"
import json, sys
from pathlib import Path
import numpy as np, cv2
import matplotlib.pyplot as plt
plt.rcParams["figure.dpi"] = 60
REPO = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
sys.path.insert(0, str(REPO))
from monitor.testing import make_course
from monitor.pipeline import analyse_series, analyse_photo, make_reference
from monitor.testing import course_accuracy, match_lesions
from monitor.imaging import redness_map
from monitor.imaging import apply_homography
SEED = 20260302  # the seed sample_images/ was made with (python -m monitor.testing)
course = make_course(SEED)
photos = sorted((REPO / "sample_images").glob("day*.jpg"), key=lambda p: int(p.stem[3:]))
print(len(photos), "photos; treatment date", course.treatment_date)"""),
    ("md", "## 1. The photos as taken\nPose (roll up to ±12°, scale ±15 %, slight perspective, a "
           "smile) and light (white balance ±12 %, exposure ±15 %) change every day."),
    ("code", """from PIL import Image
from monitor.imaging import load_photo
fig, axes = plt.subplots(2, 4, figsize=(14, 7))
for ax, path in zip(axes.ravel(), photos):
    ax.imshow(load_photo(path).pixels); ax.set_title(path.name); ax.axis("off")
plt.tight_layout()"""),
    ("md", "## 2. Analysis\nIntake, quality gate, face model, alignment to day 0, colour "
           "normalisation, redness and lesions: `python -m monitor analyze` does exactly this."),
    ("code", """analysis = analyse_series([REPO / "sample_images"], treatment_date=course.treatment_date)
for p in analysis["photos"]:
    print(f"day {p['day']}: {p['status']}, alignment {p['alignment_score']:.3f} "
          f"({p['alignment_method']}), light from {p['colour']['reference']}, "
          f"redness {p['redness']['index']:+.2f} a*, {p['lesion_count']} spots")"""),
    ("md", "## 3. Aligned to the first photo\nEach photo warped by its `to_reference` matrix. "
           "The green dots are the *true* positions of the same face points in day 0."),
    ("code", """reference = load_photo(REPO / "sample_images" / analysis["reference"]).pixels
h, w = reference.shape[:2]
fig, axes = plt.subplots(2, 4, figsize=(14, 7))
truth_points = course.photos[0].to_photo(course.base_landmarks[::12])
for ax, path, entry in zip(axes.ravel(), photos, analysis["photos"]):
    aligned = cv2.warpPerspective(load_photo(path).pixels, np.asarray(entry["to_reference"]), (w, h))
    ax.imshow(aligned[250:850, 250:850]); ax.axis("off"); ax.set_title(f"day {entry['day']} aligned")
    ax.scatter(truth_points[:, 0] - 250, truth_points[:, 1] - 250, s=2, c="lime")
plt.tight_layout()"""),
    ("md", "## 4. Redness maps\nCIELAB a* above the reference photo's skin, after colour "
           "normalisation from the surroundings of the face (never from the skin itself)."),
    ("code", """ref_result = analyse_photo(photos[0], name=photos[0].name)
ref = make_reference(ref_result)
fig, axes = plt.subplots(2, 4, figsize=(14, 7))
for ax, path in zip(axes.ravel(), photos):
    result = analyse_photo(path, name=path.name, reference=ref) if path != photos[0] else ref.result
    crop = result.crop
    linear = result.measurement.colour.apply(crop.pixels)
    delta = redness_map(linear, crop.face.skin_mask(), baseline=ref.baseline)
    ax.imshow(crop.pixels); im = ax.imshow(delta, cmap="magma", vmin=-2, vmax=12, alpha=0.75)
    ax.set_title(f"{path.stem}: index {result.measurement.redness.index:+.1f}"); ax.axis("off")
fig.colorbar(im, ax=axes, shrink=0.6, label="Δa* (CIELAB units)")"""),
    ("md", "## 5. Lesions\nDetections (circles: yellow papule, cyan pustule) against the painted "
           "lesions (small red crosses). Moles were there on day 0 and are not counted."),
    ("code", """fig, axes = plt.subplots(2, 4, figsize=(14, 7))
for ax, path, entry, truth in zip(axes.ravel(), photos, analysis["photos"], course.photos):
    ax.imshow(load_photo(path).pixels[250:850, 250:850]); ax.axis("off")
    for les in entry["lesions"]:
        ax.add_patch(plt.Circle((les["x"] - 250, les["y"] - 250), les["radius"] + 3, fill=False,
                                color="yellow" if les["kind"] == "papule" else "cyan", lw=1.2))
    t = truth.lesions_in_photo()
    if t:
        ax.scatter([l["x"] - 250 for l in t], [l["y"] - 250 for l in t], marker="+", c="red", s=30)
    ax.set_title(f"day {entry['day']}: {entry['lesion_count']} found, {len(t)} painted")
plt.tight_layout()"""),
    ("md", "## 6. Accuracy against the ground truth"),
    ("code", """figures = course_accuracy(course, analysis)
s = figures["lesions"]
print(f"photos accepted: {figures['accepted']}/{figures['photos']}")
print(f"alignment error: median {100*figures['alignment_median_iod']:.2f} %, worst "
      f"{100*figures['alignment_worst_iod']:.2f} % of the inter-ocular distance (targets 1 % / 2 %)")
print(f"lesions: precision {s.precision:.3f}, recall {s.recall:.3f}, F1 {s.f1:.3f} (target 0.90); "
      f"mean count error {figures['count_error_mean']:.2f} per photo (target <= 1.0)")
print(f"redness index vs painted erythema: Spearman {figures['redness_spearman']:.3f} (target 0.95)")
days = [p["day"] for p in analysis["photos"]]
fig, ax1 = plt.subplots(figsize=(8, 3.5))
ax1.plot(days, [p["redness"]["index"] for p in analysis["photos"]], "o-", c="crimson", label="redness index (Δa*)")
ax1.plot(days, [10 * t.erythema for t in course.photos], "--", c="crimson", alpha=0.5, label="painted erythema ×10")
ax2 = ax1.twinx()
ax2.plot(days, [p["lesion_count"] for p in analysis["photos"]], "s-", c="navy", label="spots found")
ax2.plot(days, [len(t.lesions) for t in course.photos], "--", c="navy", alpha=0.5, label="spots painted")
ax1.set_xlabel("days since treatment"); fig.legend(loc="upper right"); plt.tight_layout()"""),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for kind, text in CELLS:
        nb.cells.append(nbformat.v4.new_markdown_cell(text) if kind == "md"
                        else nbformat.v4.new_code_cell(text))
    return nb


def execute(nb: nbformat.NotebookNode, *, timeout: int = 600) -> nbformat.NotebookNode:
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def main() -> int:
    nb = execute(build())
    nbformat.write(nb, OUT)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
