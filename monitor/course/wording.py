"""The statuses of a course and the words it is told in."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "REDNESS_PHRASES",
    "STATUSES",
    "STATUS_INFO",
    "StatusInfo",
    "spots_phrase",
]


@dataclass(frozen=True)
class StatusInfo:
    """What a course status means, wherever it is shown.

    Attributes
    ----------
    words : str
        The status in plain words (patients, the app and the record read these, never the
        code).
    sentence : str
        How the course's summary puts it.
    triage : int
        Place on the clinician's triage list, most urgent first (courses flagged for a
        dermatologist come before all of these).
    settled : bool
        The course is going as it should: shown as good news.
    """

    words: str
    sentence: str
    triage: int
    settled: bool


#: Every value ``Course.status`` can take, from "nothing to say yet" to "getting worse", and
#: what each means: the one table the summary, the app, the report and triage read.
STATUS_INFO: dict[str, StatusInfo] = {
    "insufficient_data": StatusInfo(
        "Not enough photos yet to judge the course",
        "There are too few photos to judge the course yet; a photo a day helps.", 2, False),
    "resolved": StatusInfo("Settled", "The breakout has settled.", 4, True),
    "resolving_as_expected": StatusInfo(
        "Settling as expected", "This looks like the usual course.", 3, True),
    "slower_than_expected": StatusInfo(
        "Slower than expected", "This is taking longer than usual.", 1, False),
    "worsening": StatusInfo(
        "Getting worse", "This is getting worse rather than better.", 0, False),
}


STATUSES = tuple(STATUS_INFO)


def spots_phrase(count: float) -> str:
    """A lesion count in words: "1 spot", "3 spots"."""
    n = int(round(count))
    return "1 spot" if n == 1 else f"{n} spots"


#: The course's ``redness_state`` in the words of its summary.
REDNESS_PHRASES = {
    "back_to_normal": "redness back to normal",
    "coming_down": "redness coming down",
    "still_raised": "redness still raised",
    "not_coming_down": "redness not coming down",
    "rising": "redness increasing",
}
