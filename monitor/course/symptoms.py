"""Symptoms reported by the patient at check-in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.course.records import is_whole

__all__ = [
    "SYMPTOM_NAMES",
    "Symptoms",
]


_SYMPTOM_SENTENCES = {
    "fever": "You reported a fever{when}.",
    "pain": "You reported pain in the treated skin{when}.",
    "spreading_redness": "You reported redness that is spreading{when}.",
    "pus": "You reported pus (yellow or white fluid) in the treated skin{when}.",
    "cold_sores": "You reported cold sores{when}.",
}


#: The symptoms a patient is asked about, in the order they are reported: the one list the
#: check-in, the database's columns and the course's reasons follow.
SYMPTOM_NAMES: tuple[str, ...] = tuple(_SYMPTOM_SENTENCES)


@dataclass(frozen=True)
class Symptoms:
    """What the patient reported when the app asked (each reported symptom raises the flag).

    Parameters
    ----------
    fever, pain, spreading_redness, pus, cold_sores : bool
        Whether the patient reported it.
    day : int or None
        Day since treatment of the report, if known.
    """

    fever: bool = False
    pain: bool = False
    spreading_redness: bool = False
    pus: bool = False
    cold_sores: bool = False
    day: int | None = None

    def __post_init__(self) -> None:
        for name in SYMPTOM_NAMES:
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"Symptoms.{name} must be True or False, got {value!r}")
        if self.day is not None and (isinstance(self.day, bool) or not is_whole(self.day)):
            raise TypeError(
                f"Symptoms.day must be a whole number of days or None, got {self.day!r}"
            )

    @property
    def reported(self) -> tuple[str, ...]:
        """Names of the symptoms reported, in a fixed order."""
        return tuple(name for name in SYMPTOM_NAMES if getattr(self, name))

    def reasons(self) -> tuple[str, ...]:
        """One plain sentence per reported symptom."""
        when = "" if self.day is None else f" on day {int(self.day)}"
        return tuple(_SYMPTOM_SENTENCES[name].format(when=when) for name in self.reported)
