"""The one exception tree of Breakout Monitor.

Every message is written for the person who will read it (often a patient on a phone):
what happened and what to do about it. The app and the command line show these messages
as they are; any other exception is a bug.

::

    MonitorError
    ├── UnreadablePhoto        not an image, empty, truncated, unsupported format
    ├── PhotoTooLarge          would decode to too many pixels (decompression bomb)
    ├── PhotoTooSmall          too few pixels to hold a measurable face
    ├── NoFaceFound            no face, or no single dominant face
    │   └── SeveralFaces       faces of similar size, none dominant
    ├── NoSkinFound            too little skin to measure (a close-up, a glare)
    ├── PoorPhotoQuality       blurred, badly lit, face too small, pose too far off
    ├── AlignmentFailed        could not be mapped onto the reference photo
    ├── NotTheSameFace         the face is not the reference photo's (someone else's photo)
    ├── NotEnoughPhotos        too few usable photos for what was asked
    ├── PhotoStorageUnavailable  the photo storage cannot be reached, or refused
    ├── AccessDenied           the signed-in person may not see or change this record
    ├── AccountError           an account cannot be created or changed as asked
    └── SignInPaused           too many failed sign-ins: wait before trying again
"""

from __future__ import annotations

__all__ = [
    "MonitorError",
    "UnreadablePhoto",
    "PhotoTooLarge",
    "PhotoTooSmall",
    "NoFaceFound",
    "SeveralFaces",
    "NoSkinFound",
    "PoorPhotoQuality",
    "AlignmentFailed",
    "NotTheSameFace",
    "NotEnoughPhotos",
    "PhotoStorageUnavailable",
    "AccessDenied",
    "AccountError",
    "SignInPaused",
]


class MonitorError(Exception):
    """Base of every error a user can act on; ``str(error)`` is the plain message."""


class UnreadablePhoto(MonitorError):
    """The file is not a photo we can read."""


class PhotoTooLarge(MonitorError):
    """The image would decode to more pixels than we accept."""


class PhotoTooSmall(MonitorError):
    """The image has too few pixels to hold a measurable face."""


class NoFaceFound(MonitorError):
    """No single dominant face was found in the photo."""


class SeveralFaces(NoFaceFound):
    """Several faces of similar size were found in the photo, none of them dominant."""


class NoSkinFound(MonitorError):
    """A photo shows too little skin to measure: a close-up without skin, or skin lost to
    glare and shadow."""


class PoorPhotoQuality(MonitorError):
    """The photo fails the quality gate; the message says how to retake it."""


class AlignmentFailed(MonitorError):
    """The photo could not be mapped onto the reference photo."""


class NotTheSameFace(MonitorError):
    """The photo's face does not match the reference photo's: likely another person's photo."""


class NotEnoughPhotos(MonitorError):
    """Too few usable photos for the requested analysis."""


class AccessDenied(MonitorError):
    """The signed-in person may not see or change this record."""


class AccountError(MonitorError):
    """An account cannot be created or changed as asked."""


class SignInPaused(MonitorError):
    """Too many failed sign-ins in a row; the message says how long to wait."""


class PhotoStorageUnavailable(MonitorError):
    """The clinic's photo storage (an object store) cannot be reached or refused a request."""
