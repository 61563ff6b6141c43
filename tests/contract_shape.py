"""The shape of a published JSON document, to prove that a new version keeps every field.

``shape(value)``: objects by key, a list by the union of its items' shapes, scalars by type
("number", "str", "bool", "null"). ``missing(golden, shape)``: where the new shape lacks a
field of the golden one or gives it another type (a null on either side matches anything:
an optional value).
"""

from __future__ import annotations

from typing import Any


def _merge(a: Any, b: Any) -> Any:
    if a == "null":
        return b
    if b == "null":
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        return {key: _merge(a[key], b[key]) if key in a and key in b else a.get(key, b.get(key))
                for key in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list):
        return [_merge(a[0], b[0])] if a and b else a or b
    return a


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        if not value:
            return []
        merged = shape(value[0])
        for item in value[1:]:
            merged = _merge(merged, shape(item))
        return [merged]
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def missing(golden: Any, new: Any, path: str = "$") -> list[str]:
    if isinstance(golden, dict):
        if new == "null":
            return []
        if not isinstance(new, dict):
            return [f"{path}: an object became {new}"]
        return [problem for key, item in golden.items()
                for problem in ([f"{path}.{key}: missing"] if key not in new
                                else missing(item, new[key], f"{path}.{key}"))]
    if isinstance(golden, list):
        if new == "null":
            return []
        if not isinstance(new, list):
            return [f"{path}: a list became {new}"]
        return missing(golden[0], new[0], f"{path}[0]") if golden and new else []
    if "null" in (golden, new) or golden == new:
        return []
    return [f"{path}: {golden} became {new}"]
