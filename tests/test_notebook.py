"""The walkthrough notebook runs from top to bottom on the bundled sample course."""

from __future__ import annotations

import importlib.util

import pytest

from tests.courses import REPO


def test_walkthrough_notebook_executes():
    pytest.importorskip("nbclient")
    spec = importlib.util.spec_from_file_location(
        "build_walkthrough", REPO / "notebooks" / "build_walkthrough.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nb = module.execute(module.build(), timeout=300)
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "photos accepted: 8/8" in text
    assert sum("image/jpeg" in o.get("data", {}) for o in outputs) >= 5
