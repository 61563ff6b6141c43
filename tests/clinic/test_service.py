"""The clinic workflow's engine version: what marks a stored analysis as made by another engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import monitor
from monitor.clinic import ENGINE_VERSION, engine_version

PACKAGE = Path(monitor.__file__).parent


@pytest.fixture()
def package(tmp_path) -> Path:
    """A copy of the monitor package's sources and models, to change."""
    copy = tmp_path / "monitor"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_shipped_engine_has_the_version_written_with_its_analyses(package):
    assert engine_version(package) == ENGINE_VERSION == engine_version()
    assert ENGINE_VERSION.startswith(f"monitor.analysis/1+{monitor.__version__}+")


def test_a_changed_model_file_changes_the_version(package):
    model = sorted((package / "models").glob("*.onnx"))[0]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 1  # one weight's bit
    model.write_bytes(bytes(data))
    assert engine_version(package) != ENGINE_VERSION
    calibration = package / "models" / "closeup_count_calibration.json"
    shutil.copy(PACKAGE / "models" / model.name, model)
    assert engine_version(package) == ENGINE_VERSION
    calibration.write_text(calibration.read_text().replace("58.0", "59.0"))
    assert engine_version(package) != ENGINE_VERSION


@pytest.mark.parametrize("module", ["lesions/reader.py", "lesions/density.py", "imaging/colour.py",
                                    "imaging/photo.py", "course/__init__.py",
                                    "course/tracking.py"])
def test_a_changed_engine_module_changes_the_version(package, module):
    # lesions/density.py is reached only through the package's __init__ and reader.py;
    # course/tracking.py through its package.
    source = package / module
    source.write_text(source.read_text() + "\n_TUNED = 0.5\n")
    assert engine_version(package) != ENGINE_VERSION


@pytest.mark.parametrize("module", ["present/report.py", "present/charts.py",
                                    "store/__init__.py", "store/database.py"])
def test_modules_outside_the_engine_do_not_change_it(package, module):
    source = package / module
    source.write_text(source.read_text() + "\n_LAYOUT = 2\n")
    assert engine_version(package) == ENGINE_VERSION
