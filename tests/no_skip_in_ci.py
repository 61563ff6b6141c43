"""A pytest plugin: under ``CI`` (set, not "0" or "false"), a test that skips fails instead.

CI has every dependency the tests need (PostgreSQL, SeaweedFS, Chromium, ../shared/data): a
skip there means something is missing that would otherwise go unnoticed (issue #17).
"""

from __future__ import annotations

import os

import pytest


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001, ARG001 - pytest's hook signature
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be missing: {reason}"
