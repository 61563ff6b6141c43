"""House style: ruff over the code (configuration in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.courses import REPO


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(REPO / ".venv" / "bin")) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    run = subprocess.run([ruff, "check", "--output-format", "concise", "monitor", "tests",
                          "benchmarks", "notebooks", "app.py", "clinic_app.py", "app_pages"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_public_api_is_exactly_all():
    import monitor

    exported = {name for name in dir(monitor) if not name.startswith("_")} - {
        "errors", "photo", "face", "quality", "align", "colour", "redness", "lesions", "course",
        "pipeline", "synthetic", "evaluation", "store", "clinic", "report", "charts", "imagery",
        "demo", "clinic_cli", "cli", "closeup_net", "web", "reanalysis", "photostore"}
    assert exported == set(monitor.__all__) - {"__version__"}
    assert sys.modules["monitor"].__version__
