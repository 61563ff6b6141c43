"""Alignment: map every photo of a course onto the reference photo.

Two steps. A homography fitted to the dense face-mesh landmarks gives the first estimate; it is
then refined on image content with OpenCV's ECC (enhanced correlation coefficient, Evangelidis &
Psarakis 2008) over the whole face oval, on a band-passed grey image at a fixed working scale
(pupils ~100 px apart) in two pyramid levels. Band-passing removes slow shading and diffuse
redness, so a change in the skin's colour does not pull the mapping; ECC itself is invariant to
global gain and offset, so exposure does not either. The refined mapping is kept only when it
stays close to the landmark estimate over the face (closer still unless the content correlates
very well), otherwise the landmark estimate is used.

A homography lays the face onto the reference's as a plane, which an expression is not: a
third step adds a smooth non-rigid correction from dense optical flow on the face
(:class:`Refinement`, see :func:`_flow_refinement`), kept only when it lays the face better.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from monitor.errors import AlignmentFailed
from monitor.imaging.face import Face, apply_homography, crop_resize_transform

__all__ = ["Alignment", "AlignmentTarget", "Refinement", "prepare_reference", "align",
           "carry_face", "photo_to_reference", "WORK_IOD_PX", "MIN_FACE_MATCH"]

#: Inter-ocular distance of the working images on which ECC runs, in pixels.
WORK_IOD_PX = 100.0
_MARGIN = 0.25  # working crop margin around the face box, as a fraction of the box size
_BANDPASS_SIGMA_IOD = 0.12
_MAX_REFINEMENT_IOD = 0.08  # refinement may move face points at most this far from landmarks
# ... or this far when its correlation is at least _TRUSTED_RHO. The landmark fit of a face cut
# by the frame is off by up to 0.19 IOD (re-shoots of the ACNE04 dev faces, zoomed 4-12 %),
# which ECC corrects at a correlation of 0.999; on the synthetic courses it moves face points
# at most 0.04 IOD at 0.987 or more. A degenerate ECC (on content without features) reaches a
# correlation of 1 by moving them 3-9 IOD: the bound stays.
_TRUSTED_RHO = 0.95
_MAX_TRUSTED_REFINEMENT_IOD = 0.3


@dataclass(frozen=True, eq=False)
class AlignmentTarget:
    """The reference photo, prepared once for aligning many photos onto it."""

    face: Face
    to_work: np.ndarray  # (3, 3) reference pixels -> working pixels
    work: np.ndarray  # (h, w) float32 band-passed grey working image
    mask: np.ndarray  # (h, w) uint8 face oval in the working image
    features: tuple  # SIFT points (n, 2) in working pixels and descriptors, on the face


@dataclass(frozen=True, eq=False)
class Refinement:
    """A smooth non-rigid correction of a homography on the reference's face.

    The homography lays a face onto the reference's as a plane; an expression (a smile, a
    jaw drop) moves parts of the face against the rest. The correction says where: the
    reference point ``p`` shows the skin that the homography puts at ``p + d(p)``. ``d`` is
    sampled on a regular grid (``grid_to_reference`` maps grid (column, row) to reference
    pixels) and is zero beyond the face.

    Attributes
    ----------
    grid_to_reference : ndarray of shape (3, 3)
        Affine map of grid coordinates (column, row) to reference pixels.
    dx, dy : ndarray of shape (rows, columns), float32
        The displacement ``d`` in reference pixels at the grid points.
    """

    grid_to_reference: np.ndarray
    dx: np.ndarray
    dy: np.ndarray

    def displacement(self, points: np.ndarray) -> np.ndarray:
        """``d`` at (N, 2) reference points (bilinear between grid points, zero beyond)."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        grid = apply_homography(np.linalg.inv(self.grid_to_reference), points).astype(np.float32)
        out = np.empty((len(points), 2))
        for k, field in enumerate((self.dx, self.dy)):
            out[:, k] = cv2.remap(np.ascontiguousarray(field, np.float32), grid[:, :1],
                                  grid[:, 1:], cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)[:, 0]
        return out

    def from_reference(self, to_reference: np.ndarray, points: np.ndarray) -> np.ndarray:
        """The photo's points that show the (N, 2) reference points ``points``."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        return apply_homography(np.linalg.inv(to_reference), points + self.displacement(points))

    def to_reference(self, to_reference: np.ndarray, points: np.ndarray) -> np.ndarray:
        """The reference points that the photo's (N, 2) ``points`` show.

        Solves ``p + d(p) = H(x)`` by four fixed-point steps: ``d`` is smooth and moves
        points by a few per cent of the inter-ocular distance, so that reaches a hundredth of
        a pixel.
        """
        target = apply_homography(to_reference, np.asarray(points, np.float64).reshape(-1, 2))
        p = target.copy()
        for _ in range(4):
            p = target - self.displacement(p)
        return p

    def in_frame(self, reference_to_frame: np.ndarray) -> Refinement:
        """The same correction with the reference in another frame (a similarity away)."""
        scale = float(np.sqrt(abs(np.linalg.det(reference_to_frame[:2, :2]))))
        return Refinement(grid_to_reference=reference_to_frame @ self.grid_to_reference,
                          dx=(self.dx * scale).astype(np.float32),
                          dy=(self.dy * scale).astype(np.float32))

    def largest(self) -> float:
        """The largest displacement, in reference pixels."""
        return float(np.max(np.hypot(self.dx, self.dy))) if self.dx.size else 0.0

    def to_json(self) -> dict:
        """``{"grid_to_reference": 3x3, "dx": rows x columns, "dy": ...}``, pixels to 0.01."""
        return {"grid_to_reference": [[float(f"{v:.8g}") for v in row]
                                      for row in self.grid_to_reference],
                "dx": np.round(self.dx.astype(np.float64), 2).tolist(),
                "dy": np.round(self.dy.astype(np.float64), 2).tolist()}

    @classmethod
    def from_json(cls, data: dict | None) -> Refinement | None:
        """The correction written by :meth:`to_json` (None for None)."""
        if data is None:
            return None
        dx, dy = np.asarray(data["dx"], np.float32), np.asarray(data["dy"], np.float32)
        if dx.ndim != 2 or dx.shape != dy.shape or min(dx.shape) < 1:
            raise ValueError("a refinement's dx and dy must be grids of the same shape")
        return cls(grid_to_reference=np.asarray(data["grid_to_reference"], np.float64),
                   dx=dx, dy=dy)


@dataclass(frozen=True, eq=False)
class Alignment:
    """How one photo maps onto the reference photo.

    Attributes
    ----------
    to_reference : ndarray of shape (3, 3)
        Maps this photo's pixel (x, y, 1) to the reference photo's pixels.
    score : float
        Correlation (0..1) between the reference and the aligned photo over the face.
    method : str
        ``"ecc"`` when refined on content, ``"landmarks"`` when the landmark fit was kept.
    landmark_residual_iod : float
        Median distance between mapped and reference landmarks, in inter-ocular distances:
        large when the face's expression or pose differs a lot.
    face_match : float
        The highest correlation (0..1) between the two band-passed faces that any attempt
        reached with a plausible mapping, kept or not: how well this face's own detail (the
        shapes of eyes, brows, nostrils and lips, creases, moles) can be laid onto the
        reference's. It is the evidence that both photos show the same face (see
        :data:`MIN_FACE_MATCH`).
    refinement : Refinement or None
        The non-rigid correction after ``to_reference`` (an expression), or None where the
        homography alone lays the face onto the reference's as well.
    """

    to_reference: np.ndarray
    score: float
    method: str
    landmark_residual_iod: float
    face_match: float = 1.0
    refinement: Refinement | None = None

    @property
    def same_face(self) -> bool:
        """Whether the photo's face can be laid onto the reference's (:data:`MIN_FACE_MATCH`)."""
        return self.face_match >= MIN_FACE_MATCH


def photo_to_reference(entry: Mapping, points: np.ndarray) -> np.ndarray:
    """The reference photo's points that an analysed photo's (N, 2) ``points`` show.

    ``entry`` is the photo's entry of the analysis JSON: its ``to_reference`` homography,
    corrected by its ``to_reference_refinement`` where it has one.
    """
    matrix = np.asarray(entry["to_reference"], np.float64)
    refinement = Refinement.from_json(entry.get("to_reference_refinement"))
    if refinement is None:
        return apply_homography(matrix, points)
    return refinement.to_reference(matrix, points)


#: Below this :attr:`Alignment.face_match` a photo is taken to show another face than the
#: reference photo. Measured on pairs of photos (benchmarks/wrong_photo.py): the same face
#: under the course and re-shoot perturbations (roll, scale, perspective, an expression,
#: light; synthetic courses of four faces, re-shoots of 20 real ACNE04 faces) 0.94-1.0; the
#: one real pair of two photos of one patient that we have (ACNE04 levle0_149 and 187,
#: another pose and light) 0.72 and 0.78; another person (Grace Hopper into the astronaut's
#: course and back, one ACNE04 patient into another's) 0.0-0.51: the landmarks lay eyes,
#: nose and mouth onto the reference's, but not their detail. A photo of another day also
#: changes the skin, so the threshold sits nearer the other-person side.
MIN_FACE_MATCH = 0.6


def _work_transform(face: Face) -> tuple[np.ndarray, tuple[int, int]]:
    """Crop-and-scale taking the photo's pixels to a working image with pupils WORK_IOD_PX apart."""
    scale = WORK_IOD_PX / face.inter_ocular_px
    x0, y0, x1, y1 = face.box
    mx, my = (x1 - x0) * _MARGIN, (y1 - y0) * _MARGIN
    x0, y0, x1, y1 = x0 - mx, y0 - my, x1 + mx, y1 + my
    width, height = int(np.ceil((x1 - x0) * scale)), int(np.ceil((y1 - y0) * scale))
    matrix = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale], [0, 0, 1.0]])
    return matrix, (width, height)


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _resample(grey: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp ``grey`` by ``matrix`` into an image of ``size``, area-averaging when shrinking."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
    if scale < 0.75:
        # Shrink the relevant part first so that the perspective warp does not alias.
        inv = np.linalg.inv(matrix)
        corners = apply_homography(inv, np.array([[0, 0], [size[0], 0], [0, size[1]],
                                                  [size[0], size[1]]], float))
        x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, grey.shape[1]), min(y1, grey.shape[0])
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise AlignmentFailed(_FAILED)
        crop = grey[y0:y1, x0:x1]
        small_w, small_h = max(2, round((x1 - x0) * scale)), max(2, round((y1 - y0) * scale))
        small = cv2.resize(crop, (small_w, small_h), interpolation=cv2.INTER_AREA)
        sx, sy = small_w / (x1 - x0), small_h / (y1 - y0)
        pre = crop_resize_transform(x0, y0, sx, sy)
        grey, matrix = small, matrix @ np.linalg.inv(pre)
    return cv2.warpPerspective(grey, matrix, size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def _bandpass(grey: np.ndarray) -> np.ndarray:
    image = grey.astype(np.float32)
    image = cv2.GaussianBlur(image, (0, 0), 1.0)
    return image - cv2.GaussianBlur(image, (0, 0), _BANDPASS_SIGMA_IOD * WORK_IOD_PX)


def prepare_reference(rgb: np.ndarray, face: Face) -> AlignmentTarget:
    """Prepare the reference photo (and its face) for :func:`align`."""
    to_work, size = _work_transform(face)
    work = _bandpass(_resample(_grey(rgb), to_work, size))
    mask = _face_hull(face, to_work, size)
    return AlignmentTarget(face=face, to_work=to_work, work=work, mask=mask,
                           features=_features(rgb, face, to_work, size))


def _face_hull(face: Face, to_work: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The whole face in a working image: skin, eyes, brows, nose, lips (the oval's hull)."""
    oval = face.skin_mask(shape=(size[1], size[0]), transform=to_work)
    hull = cv2.convexHull(np.argwhere(oval)[:, ::-1].astype(np.int32))
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask


#: Skin features are found on a working image this many times finer than ECC's, with SIFT's
#: contrast threshold lowered from 0.04: smooth skin at ECC's scale gives too few of them. On
#: a cheek close-up of ACNE04 (held-out training photo levle3_108, re-shot as in
#: benchmarks/repeatability.py) the reference had 18 features on the face and no re-shoot
#: could start from them (its four were aligned by the landmarks at a correlation of 0-0.19);
#: finer and at 0.02 it has 217, and all four align by ECC at 0.999.
_FEATURE_UPSCALE = 2.0
_FEATURE_CONTRAST = 0.02


def _sift() -> cv2.SIFT:
    """SIFT with the lowered contrast threshold the skin's features need."""
    return cv2.SIFT_create(contrastThreshold=_FEATURE_CONTRAST)


def _features(rgb: np.ndarray, face: Face | None, to_work: np.ndarray,
              size: tuple[int, int]) -> tuple:
    """SIFT keypoints (in working pixels) and descriptors of the face (of the whole image
    when ``face`` is None), found finer."""
    fine = np.diag([_FEATURE_UPSCALE, _FEATURE_UPSCALE, 1.0]) @ to_work
    fine_size = (round(size[0] * _FEATURE_UPSCALE), round(size[1] * _FEATURE_UPSCALE))
    grey = _resample(_grey(rgb), fine, fine_size)
    mask = (np.full(grey.shape, 255, np.uint8) if face is None
            else _face_hull(face, fine, fine_size))
    keypoints, descriptors = _sift().detectAndCompute(grey, mask)
    points = np.float32([k.pt for k in keypoints]).reshape(-1, 2) / np.float32(_FEATURE_UPSCALE)
    return points, descriptors


#: Matched skin features (SIFT, Lowe's ratio 0.75, RANSAC at 3 working pixels = 0.03 IOD)
#: needed to start ECC from them instead of the landmarks.
_MIN_FEATURE_INLIERS = 25


def _feature_start(rgb: np.ndarray, face: Face, target: AlignmentTarget) -> np.ndarray | None:
    """Photo -> reference working frame from matched skin features, or None.

    For faces whose landmark fit is far off (a face seen from the side: the mesh's hidden half
    is guessed), so that ECC, started from the landmarks, cannot converge.
    """
    ref_points, ref_desc = target.features
    if ref_desc is None or len(ref_points) < _MIN_FEATURE_INLIERS:
        return None
    to_work, size = _work_transform(face)
    points, desc = _features(rgb, face, to_work, size)
    h = _match(points, desc, target, _MIN_FEATURE_INLIERS)
    return None if h is None else h @ to_work


def _match(points: np.ndarray, desc: np.ndarray | None, target: AlignmentTarget,
           minimum: int, *, from_reference: bool = False) -> np.ndarray | None:
    """Homography from ``points`` to the reference's working frame by matched SIFT features
    (Lowe's ratio 0.75, RANSAC at 3 working pixels), or None with fewer than ``minimum``
    inliers.

    Each of the photo's features looks for its match among the reference's, or, with
    ``from_reference``, each of the reference's among the photo's: the ratio test only
    means something when the features searched are not much fewer than those searching.
    """
    ref_points, ref_desc = target.features
    if desc is None or ref_desc is None or min(len(points), len(ref_points)) < minimum:
        return None
    if from_reference:
        pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(ref_desc, desc, k=2)
    else:
        pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc, ref_desc, k=2)
    good = [m for m, *rest in pairs if rest and m.distance < 0.75 * rest[0].distance]
    if len(good) < minimum:
        return None
    mine = [m.trainIdx if from_reference else m.queryIdx for m in good]
    theirs = [m.queryIdx if from_reference else m.trainIdx for m in good]
    h, inliers = cv2.findHomography(points[mine], ref_points[theirs], cv2.RANSAC, 3.0)
    if h is None or int(inliers.sum()) < minimum:
        return None
    return h


#: Matched features needed to place the reference's face on a photo in which no face was found
#: (:func:`carry_face`; the reference's features matched among the whole photo's). Re-shoots
#: of ACNE04 cheek close-ups whose face the meshes found in the first photo only
#: (benchmarks/repeatability.py, dev levle1_24 and levle3_20; 65 and 1502 features on the
#: reference's face) matched with 36-45 and 936-1038 inliers; the same references against
#: the 59 other patients' dev photos, with at most 4 and 5.
_MIN_CARRY_INLIERS = 25
#: How far a carried face's scale may differ from the reference's, either way.
_MAX_CARRY_SCALE = 2.0


def carry_face(rgb: np.ndarray, target: AlignmentTarget, guess: np.ndarray) -> Face | None:
    """The reference's face placed on a photo of the same view in which no face was found.

    A cheek close-up shows too little of a face for the meshes to find it every time; when
    the whole photo's skin features (SIFT, as the reference's in ``target``) match the
    reference's, the reference's landmarks are laid on the photo through the homography they
    give. ``guess`` maps the photo's pixels to the reference's working frame as if the photo
    were framed as the reference was (a scale: the features are looked for at about the
    reference's own scale). None when the features do not match (another view, another
    person) or the match would make the face more than twice as large or small.
    """
    height, width = rgb.shape[:2]
    corner = apply_homography(guess, np.array([[width, height]], float))[0]
    size = (int(np.ceil(corner[0])), int(np.ceil(corner[1])))
    if min(size) * _FEATURE_UPSCALE < 16:
        return None
    points, desc = _features(rgb, None, guess, size)
    h = _match(points, desc, target, _MIN_CARRY_INLIERS, from_reference=True)
    if h is None:
        return None
    to_photo = np.linalg.inv(h @ guess) @ target.to_work  # reference working copy -> photo
    to_photo /= to_photo[2, 2]
    centre = target.face.landmarks.mean(axis=0)
    step = apply_homography(to_photo, np.array([centre, centre + (1, 0), centre + (0, 1)]))
    # Photo pixels per reference working-copy pixel, as carried and as the guess frames it.
    scale = float(np.sqrt(abs(np.linalg.det(np.array([step[1] - step[0], step[2] - step[0]])))))
    framed = float(np.sqrt(abs(np.linalg.det(target.to_work[:2, :2])
                               / np.linalg.det(guess[:2, :2]))))
    if not framed / _MAX_CARRY_SCALE <= scale <= framed * _MAX_CARRY_SCALE:
        return None
    return Face(landmarks=apply_homography(to_photo, target.face.landmarks),
                depth=target.face.depth * scale, image_shape=(height, width))


def _ecc(template: np.ndarray, image: np.ndarray, mask: np.ndarray,
         warp: np.ndarray) -> tuple[float, np.ndarray]:
    """ECC homography such that image(warp(x)) ~ template(x), coarse to fine (2 levels)."""
    half = np.diag([0.5, 0.5, 1.0])
    coarse_template = cv2.resize(template, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    coarse_image = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    coarse_mask = cv2.resize(mask, (coarse_template.shape[1], coarse_template.shape[0]),
                             interpolation=cv2.INTER_NEAREST)
    w = (half @ warp @ np.linalg.inv(half)).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)
    _, w = cv2.findTransformECC(coarse_template, coarse_image, w, cv2.MOTION_HOMOGRAPHY,
                                criteria, coarse_mask, 3)
    w = (np.linalg.inv(half) @ w.astype(np.float64) @ half).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 15, 1e-4)
    rho, w = cv2.findTransformECC(template, image, w, cv2.MOTION_HOMOGRAPHY, criteria, mask, 3)
    return float(rho), w.astype(np.float64)


_FAILED = ("We could not line this photo up with your first photo. Please take it from the "
           "same distance and angle, facing the camera.")


def _correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    m = mask.astype(bool)
    x, y = a[m] - a[m].mean(), b[m] - b[m].mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def align(rgb: np.ndarray, face: Face, target: AlignmentTarget) -> Alignment:
    """Map a photo onto the reference photo.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
        The photo.
    face : Face
        Its face, found by :func:`monitor.imaging.face.find_face`.
    target : AlignmentTarget
        The reference photo, from :func:`prepare_reference`.

    Returns
    -------
    Alignment

    Raises
    ------
    AlignmentFailed
        When not even the landmark mapping is plausible.
    """
    ref = target.face
    iod_ref = ref.inter_ocular_px
    landmark_h, _ = cv2.findHomography(face.landmarks[:468], ref.landmarks[:468], 0)
    if landmark_h is None:
        raise AlignmentFailed(_FAILED)
    residual = np.linalg.norm(apply_homography(landmark_h, face.landmarks[:468])
                              - ref.landmarks[:468], axis=1)
    residual_iod = float(np.median(residual) / iod_ref)

    height, width = target.work.shape
    grey = _grey(rgb)
    # Photo -> reference working frame by the landmark estimate, then refine on content.
    photo_to_work = target.to_work @ landmark_h
    warped = _bandpass(_resample(grey, photo_to_work, (width, height)))
    landmark_warped = warped  # the photo laid on by the landmark fit, band-passed
    method, to_reference = "landmarks", landmark_h
    score = _correlation(target.work, warped, target.mask)
    try:
        rho, refine = _ecc(target.work, warped, target.mask, np.eye(3))
    except cv2.error:
        rho, refine = -1.0, None
    match = score
    if refine is not None and rho > score:
        # refine maps working coords to the warped photo's coords: photo -> work is refine^-1.
        candidate = np.linalg.inv(target.to_work) @ np.linalg.inv(refine) @ photo_to_work
        candidate /= candidate[2, 2]
        moved = np.max(np.linalg.norm(apply_homography(candidate, face.landmarks[:468])
                                      - apply_homography(landmark_h, face.landmarks[:468]),
                                      axis=1))
        limit = _MAX_TRUSTED_REFINEMENT_IOD if rho >= _TRUSTED_RHO else _MAX_REFINEMENT_IOD
        if moved < limit * iod_ref:
            method, to_reference, score = "ecc", candidate, rho
        if moved < _MAX_TRUSTED_REFINEMENT_IOD * iod_ref:
            match = rho  # not a degenerate fit (see _MAX_TRUSTED_REFINEMENT_IOD)
    if score < _TRUSTED_RHO:
        # The landmarks may be too far off for ECC to converge: start it from skin features.
        start = _feature_start(rgb, face, target)
        if start is not None:
            warped = _bandpass(_resample(grey, start, (width, height)))
            try:
                rho, refine = _ecc(target.work, warped, target.mask, np.eye(3))
            except cv2.error:
                rho, refine = -1.0, None
            match = max(match, rho)
            if refine is not None and rho >= _TRUSTED_RHO and rho > score:
                candidate = np.linalg.inv(target.to_work) @ np.linalg.inv(refine) @ start
                method, to_reference, score = "ecc", candidate / candidate[2, 2], rho
    refinement = None
    laid = landmark_warped if to_reference is landmark_h else _bandpass(
        _resample(grey, target.to_work @ to_reference, (width, height)))
    refined = _flow_refinement(target, laid)
    if refined is not None:
        refinement, score = refined
    return Alignment(to_reference=to_reference, score=float(np.clip(score, 0.0, 1.0)),
                     method=method, landmark_residual_iod=residual_iod,
                     face_match=float(np.clip(match, 0.0, 1.0)), refinement=refinement)


#: The flow beyond the plane part is averaged with a Gaussian of this width (inter-ocular
#: distances): an expression moves whole parts of the face (the mouth corners, the jaw), not
#: single pores or a new lesion ...
_FLOW_SIGMA_IOD = 0.1
#: ... over the face and this far around it (inter-ocular distances): the chin's outline
#: moves with a dropped jaw, and without it the chin point was left half corrected.
#: Measured on synthetic courses with smiles of 1.2-2 % of the inter-ocular distance (five
#: courses, three faces; benchmarks/expression.py holds out others), worst face point: the
#: homography alone 2.14 %; the flow averaged over the face 1.59 % (its outline pulled by the
#: background), weighted by the reference's detail 1.30 %, with the plane part fitted
#: apart 1.41 %, and this far around the face 0.96 % (0.99 % at 0.2; 0.89 % with a width
#: of 0.12).
_FLOW_REACH_IOD = 0.1
#: Width (working pixels) over which the reference's texture energy is taken.
_TEXTURE_SIGMA_PX = 3.0
#: The plane part of the flow is fitted on every this many working pixels of the face's
#: detail, with RANSAC inliers within this many working pixels.
_RIGID_STEP = 4
_RIGID_RANSAC_PX = 0.3
#: The correction fades to zero over this much of the working image's edge (inter-ocular
#: distances), well beyond the face (the working image has a quarter of the face box around).
_EDGE_FADE_IOD = 0.1
#: The local part of the correction (beyond its plane part) moves no point further than
#: this (inter-ocular distances).
_MAX_FLOW_IOD = 0.06
#: Grid step of the stored correction, in working pixels (inter-ocular distance 100).
_FLOW_STEP = 6
#: The correction is kept when it raises the correlation over the face by at least this.
_MIN_FLOW_GAIN = 0.002


def _smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """A blur as wide as a Gaussian of ``sigma`` pixels: OpenCV's stack blur (a tent of the
    same variance), seven times faster than the Gaussian at the flow's width."""
    radius = max(1, round(float(np.sqrt(6.0 * sigma * sigma + 1.0)) - 1))
    return cv2.stackBlur(image, (2 * radius + 1, 2 * radius + 1))


def _to_uint8(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    spread = float(image[mask].std()) or 1.0
    return np.clip(128.0 + image * (40.0 / spread), 0, 255).astype(np.uint8)


def _flow_refinement(target: AlignmentTarget,
                     warped: np.ndarray) -> tuple[Refinement, float] | None:
    """A smooth correction of a photo laid onto the reference by a homography.

    ``warped`` is the band-passed photo already laid onto the reference's working image by
    a homography. Dense optical flow (OpenCV's DIS, Kroeger et al. 2016) between the two is
    split in two parts. A homography fitted to the flow on the face's detail by RANSAC is the
    part of the face that moves as a plane: a fit on the whole face (ECC's) is pulled by an
    expression, which leaves the forehead off by as much as the smile. What the flow moves
    beyond that plane is averaged over the face (normalised convolution weighted by the
    reference's detail, :data:`_FLOW_SIGMA_IOD`), faded to zero beyond it and bounded by
    :data:`_MAX_FLOW_IOD`. The correction is both together, relative to the homography,
    faded to zero over the working image's outer :data:`_EDGE_FADE_IOD`.

    Returns the correction and the correlation over the face it reaches, or None when it
    does not lay the face better than the homography alone (by :data:`_MIN_FLOW_GAIN`).
    """
    mask = target.mask.astype(bool)
    before = _correlation(target.work, warped, target.mask)
    if before > 1.0 - _MIN_FLOW_GAIN:
        return None  # nothing left to gain
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(
        _to_uint8(target.work, mask), _to_uint8(warped, mask), None)
    h, w = warped.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    # Flow is trusted where the reference has detail to follow (texture energy, relative to
    # the face's median), and not at all beyond the face.
    grad_x = cv2.Sobel(target.work, cv2.CV_32F, 1, 0)
    grad_y = cv2.Sobel(target.work, cv2.CV_32F, 0, 1)
    energy = cv2.GaussianBlur(grad_x * grad_x + grad_y * grad_y, (0, 0), _TEXTURE_SIGMA_PX)
    energy /= max(float(np.median(energy[mask])), 1e-6)
    # The plane part is fitted where the face has at least its median detail.
    sample = np.zeros_like(mask)
    sample[::_RIGID_STEP, ::_RIGID_STEP] = True
    ys, xs = np.nonzero(mask & (energy >= 1.0) & sample)
    if len(xs) < 50:
        return None
    src = np.c_[xs, ys].astype(np.float32)
    dst = src + flow[ys, xs]
    rigid, _ = cv2.findHomography(src, dst, cv2.RANSAC, _RIGID_RANSAC_PX, maxIters=2000,
                                  confidence=0.999)
    if rigid is None:
        return None
    # The flow's destination w + f(w) seen from the corrected homography: a residual r with
    # w + f(w) = rigid(w + r(w)).
    grid = np.dstack([gx, gy])
    residual = cv2.perspectiveTransform(grid + flow, cv2.invert(rigid)[1]) - grid
    inside = mask.astype(np.float32)
    side = 2 * int(round(_FLOW_REACH_IOD * WORK_IOD_PX)) + 1
    inside = cv2.dilate(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)))
    weight = inside * energy
    sigma = _FLOW_SIGMA_IOD * WORK_IOD_PX
    cover = _smooth(inside, sigma)
    weight_sum = _smooth(weight, sigma)
    smooth = _smooth(residual * weight[..., None], sigma)
    smooth = (smooth / np.maximum(weight_sum, 1e-3)[..., None]
              * np.clip(2.0 * cover, 0, 1)[..., None])
    size = np.hypot(smooth[..., 0], smooth[..., 1])
    limit = _MAX_FLOW_IOD * WORK_IOD_PX
    smooth *= np.minimum(1.0, limit / np.maximum(size, 1e-6))[..., None]
    # The reference point w shows what the homography put at rigid(w + smooth(w)), which
    # fades back to w over the working image's outer margin (beyond it the correction is 0).
    total = cv2.perspectiveTransform(grid + smooth, rigid) - grid
    edge = np.minimum(np.minimum(gx, w - 1 - gx), np.minimum(gy, h - 1 - gy))
    total *= np.clip(edge / (_EDGE_FADE_IOD * WORK_IOD_PX), 0, 1)[..., None]
    moved = cv2.remap(warped, gx + total[..., 0], gy + total[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    after = _correlation(target.work, moved, target.mask)
    if after < before + _MIN_FLOW_GAIN:
        return None
    scale = float(target.to_work[0, 0])
    sampled = total[::_FLOW_STEP, ::_FLOW_STEP] / np.float32(scale)
    grid_to_work = np.diag([float(_FLOW_STEP), float(_FLOW_STEP), 1.0])
    refinement = Refinement(grid_to_reference=cv2.invert(target.to_work)[1] @ grid_to_work,
                            dx=np.ascontiguousarray(sampled[..., 0]),
                            dy=np.ascontiguousarray(sampled[..., 1]))
    return refinement, after
