"""Breakout Monitor: follow a skin breakout day by day from ordinary photos."""

from monitor.errors import (
    AccessDenied,
    AccountError,
    AlignmentFailed,
    MonitorError,
    NoFaceFound,
    NoSkinFound,
    NotEnoughPhotos,
    NotTheSameFace,
    PhotoStorageUnavailable,
    PhotoTooLarge,
    PhotoTooSmall,
    PoorPhotoQuality,
    SeveralFaces,
    UnreadablePhoto,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "AccountError",
    "AlignmentFailed",
    "MonitorError",
    "NoFaceFound",
    "NoSkinFound",
    "NotEnoughPhotos",
    "NotTheSameFace",
    "PhotoStorageUnavailable",
    "PhotoTooLarge",
    "PhotoTooSmall",
    "PoorPhotoQuality",
    "SeveralFaces",
    "UnreadablePhoto",
    "__version__",
]
