"""The library installs as a wheel and works outside the repository: its networks, schemas,
migrations and password list travel inside the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.courses import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, installed (without its dependencies, which the test
    environment has) into a folder of its own."""
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of what the wheel is made of: a build leaves build/ and *.egg-info
    # behind, and a stale build/ in the checkout would be packaged again.
    source = out / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "monitor", source / "monitor",
                    ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                            "-q", "-w", str(out / "dist")],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    wheels = list((out / "dist").glob("breakout_monitor-*.whl"))
    assert len(wheels) == 1
    target = out / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                              "--target", str(target), str(wheels[0])],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    return target


def _outside(installed, tmp_path, *args):
    """Run python with the installed package, from a folder outside the repository."""
    env = dict(os.environ, PYTHONPATH=str(installed))
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_installed_package_analyses_a_course_outside_the_repository(installed, tmp_path):
    out = tmp_path / "analysis.json"
    run = _outside(installed, tmp_path, "-m", "monitor", "analyze",
                   str(REPO / "sample_images" / "day0.jpg"),
                   str(REPO / "sample_images" / "day2.jpg"), "--quiet", "--json", str(out))
    assert run.returncode == 0, run.stderr
    analysis = json.loads(out.read_text(encoding="utf-8"))
    assert [p["status"] for p in analysis["photos"]] == ["ok", "ok"]
    assert analysis["photos"][1]["lesion_count"] > 0  # the networks came with it
    where = _outside(installed, tmp_path, "-c", "import monitor, monitor.contract as c; "
                     "print(monitor.__file__); print(c.ANALYSIS_SCHEMA_FILE.is_file())")
    assert where.returncode == 0, where.stderr
    path, schema = where.stdout.split()
    assert path.startswith(str(installed)) and schema == "True"


def test_the_installed_store_migrates_its_own_database(installed, tmp_path):
    code = ("from monitor.store import Store; s = Store('data'); "
            "u = s.create_user('doc', 'a long pass phrase 42', role='clinician'); "
            "print(u.role)")
    run = _outside(installed, tmp_path, "-c", code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "clinician"
    assert (tmp_path / "data").is_dir()


def test_the_demo_makes_its_sample_course_where_the_repository_is_not(tmp_path, monkeypatch):
    import monitor.testing.demo as demo

    assert demo._samples(tmp_path) == demo.SAMPLES  # in the repository: its sample_images/
    monkeypatch.setattr(demo, "SAMPLES", tmp_path / "no repository here")
    folder = demo._samples(tmp_path)
    assert folder == tmp_path / "sample_images"
    assert sorted(p.name for p in folder.glob("day*.jpg")) == [f"day{d}.jpg" for d in range(8)]
    made = (folder / "day3.jpg").stat().st_mtime
    assert demo._samples(tmp_path) == folder and (folder / "day3.jpg").stat().st_mtime == made
