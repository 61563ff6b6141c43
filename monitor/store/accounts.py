"""Accounts: roles, passwords (strength, hashing), sessions and sign-in pauses."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from argon2 import PasswordHasher

from monitor.errors import AccountError

__all__ = [
    "DUMMY_HASH",
    "HASHER",
    "IDLE_LIMITS",
    "ROLES",
    "SIGN_IN_LOCKOUT",
    "SIGN_IN_PAUSES",
    "TICKET_TTL",
    "check_password",
    "name_key",
    "pause_words",
    "secret_hash",
]


ROLES = ("patient", "clinician")


#: A session ends after this long without use, per role (``Store.idle_limits`` per store;
#: the app reads ``$MONITOR_IDLE_MINUTES_CLINICIAN`` and ``$MONITOR_IDLE_DAYS_PATIENT``).
IDLE_LIMITS = {"clinician": timedelta(minutes=30), "patient": timedelta(days=14)}


#: Failed sign-ins in a row that are free, and the count that locks, per account and per
#: client. In between, each failure doubles the wait before the next try (1 s, 2 s, 4 s...).
SIGN_IN_PAUSES = {"account": (3, 10), "client": (10, 30)}


SIGN_IN_LOCKOUT = timedelta(minutes=15)


#: How long a browser has to exchange its one-time ticket for its session cookie.
TICKET_TTL = timedelta(minutes=2)


_COMMON_PASSWORDS = Path(__file__).resolve().parent.parent / "common_passwords.txt"


def name_key(username: str) -> str:
    """A user name as compared: no case, no surrounding blanks."""
    return username.strip().casefold()


def secret_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pause_words(wait: timedelta) -> str:
    seconds = max(1, int(wait.total_seconds() + 0.999))
    if seconds < 60:
        when = f"{seconds} second{'s' if seconds != 1 else ''}"
    else:
        minutes = (seconds + 59) // 60
        when = f"{minutes} minute{'s' if minutes != 1 else ''}"
    return (f"Too many sign-in attempts. Please wait {when} and try again, or ask your "
            "clinic to reset your password.")


_common: frozenset[str] | None = None


def check_password(password: str, *, username: str = "") -> None:
    """Raise :class:`AccountError` with a plain reason when ``password`` is too weak.

    At least 10 and at most 128 characters, at least 5 different characters, not one of
    the common passwords in ``monitor/common_passwords.txt`` (also with digits or symbols
    added at either end), and not the user name (nor containing it, from 4 characters).
    """
    global _common
    if len(password) < 10:
        raise AccountError("Please choose a password of at least 10 characters "
                           "(a few words you will remember work well).")
    if len(password) > 128:
        raise AccountError("Please choose a password of at most 128 characters.")
    if len(set(password)) < 5 or not password.strip():
        raise AccountError("This password is too simple. Please use a few different words.")
    if _common is None:
        _common = frozenset(line.strip().casefold() for line in
                            _COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
                            if line.strip() and not line.startswith("#"))
    folded = password.casefold()
    edges = "0123456789!@#$%^&*()-_=+.,;:?'\" /\\"
    core = folded.strip(edges)
    if {folded, core, core.replace(" ", "")} & _common or not core \
            or name_key(username) == core \
            or (len(username) >= 4 and name_key(username) in folded):
        raise AccountError("This password is too easy to guess (it is common, or contains "
                           "the user name). Please choose another.")


HASHER = PasswordHasher()


DUMMY_HASH = HASHER.hash("not a password of anyone")
