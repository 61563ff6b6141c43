"""Load a script of the repository (a benchmark, the notebook builder) as a module."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.courses import REPO


def load_script(relative_path: str) -> ModuleType:
    """The script at ``REPO / relative_path``, executed as a module named after its file."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses defined in the script look their module up by name.
    sys.modules.setdefault(path.stem, module)
    spec.loader.exec_module(module)
    return module
