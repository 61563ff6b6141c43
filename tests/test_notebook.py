"""The walkthrough notebook runs from top to bottom on the bundled sample course."""

from __future__ import annotations

import pytest

from tests.scripts import load_script


def test_walkthrough_notebook_executes():
    pytest.importorskip("nbclient")
    module = load_script("notebooks/build_walkthrough.py")
    nb = module.execute(module.build(), timeout=300)
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "photos accepted: 8/8" in text
    assert sum("image/jpeg" in o.get("data", {}) for o in outputs) >= 5
