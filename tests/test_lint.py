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
    # No cache: a cached file is not checked again when what it imports moves (a module
    # becoming third-party re-sorts imports of files that did not change).
    run = subprocess.run([ruff, "check", "--no-cache", "--output-format", "concise", "monitor",
                          "tests", "benchmarks", "notebooks", "app.py", "clinic_app.py",
                          "app_pages"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_public_api_is_exactly_all():
    import pkgutil

    import monitor

    modules = {m.name for m in pkgutil.iter_modules(monitor.__path__)}
    exported = {name for name in dir(monitor) if not name.startswith("_")} - modules
    assert exported == set(monitor.__all__) - {"__version__"}
    assert sys.modules["monitor"].__version__


def _imports_of(path):
    """(module, name) of every ``from monitor.<module> import <name>`` in a file."""
    import ast

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("monitor."):
            for alias in node.names:
                yield node.module, alias.name


def test_no_module_takes_another_modules_private_names():
    """What one module of the library takes from another is that module's public API: a name
    in its ``__all__``, never a private one. Outside a package (``monitor/course/``) that is
    the package's ``__all__``; its own modules take from each other's."""
    import importlib

    found = []
    for path in sorted((REPO / "monitor").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        own = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = ".".join(parts[:-1])
        for module, name in _imports_of(path):
            if module == own:
                continue
            inside = module.rsplit(".", 1)[0]
            if module.count(".") > 1 and inside != package:
                found.append(f"{path.name}: {module}.{name} (take it from {inside})")
                continue
            public = getattr(importlib.import_module(module), "__all__", ())
            if name.startswith("_") or name not in public:
                found.append(f"{path.name}: {module}.{name}")
    assert not found, found


_SKIPS = """
import pytest

def test_data_missing():
    pytest.skip("no data here")

@pytest.mark.skip(reason="no browser")
def test_browser_missing():
    pass

@pytest.mark.xfail(reason="a known bug", strict=False)
def test_known_bug():
    assert False

def test_runs():
    pass
"""


@pytest.mark.parametrize(("ci", "failed", "skipped"), [("true", 2, 0), ("", 0, 2),
                                                       ("false", 0, 2)])
def test_a_skip_fails_in_ci(pytester, monkeypatch, ci, failed, skipped):
    """Under CI a skip fails the run: a skip in the test (a failure) or by a mark (an error
    in the test's setup, where marks skip); an expected failure stays one."""
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(_SKIPS)
    result = pytester.runpytest_subprocess("-p", "tests.no_skip_in_ci", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=failed // 2, errors=failed // 2, skipped=skipped,
                           xfailed=1)
    assert result.ret == (1 if failed else 0)
    if failed:
        result.stdout.fnmatch_lines(["*skipped in CI, where nothing may be missing*no data*"])


MYPY_BASELINE = REPO / "tests" / "mypy_baseline.json"


def _mypy_errors() -> dict[str, list[str]]:
    """mypy's errors on monitor/ (configuration in pyproject.toml), by file."""
    import re

    run = subprocess.run([sys.executable, "-m", "mypy", "--no-color-output",
                          "--no-error-summary", "--cache-dir", str(REPO / ".mypy_cache")],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode in (0, 1), run.stderr[-2000:] or run.stdout[-2000:]
    errors: dict[str, list[str]] = {}
    for line in run.stdout.splitlines():
        found = re.match(r"^(monitor/[\w/]+\.py):\d+: error: ", line)
        if found:
            errors.setdefault(found.group(1), []).append(line)
    return errors


def test_mypy_errors_only_go_down():
    """No module gets a type error it did not have (tests/mypy_baseline.json); a module
    with fewer errors than its baseline fails until the baseline is lowered to match."""
    import json

    pytest.importorskip("mypy")
    baseline: dict[str, int] = json.loads(MYPY_BASELINE.read_text())
    errors = _mypy_errors()
    grown = {path: lines for path, lines in errors.items()
             if len(lines) > baseline.get(path, 0)}
    assert not grown, "new type errors (fix them):\n" + "\n".join(
        line for lines in grown.values() for line in lines)
    shrunk = {path: len(errors.get(path, [])) for path, count in baseline.items()
              if len(errors.get(path, [])) < count}
    assert not shrunk, f"fewer type errors than the baseline: lower it in {MYPY_BASELINE.name} " \
        f"to {shrunk}"
