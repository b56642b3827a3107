"""Bracketed query keys (``search[from]=ann@example.com``) read into the nested object they spell.

OpenAPI's ``deepObject`` style, one level deeper where the object has an object inside
(``search[header][X-Priority]=1``), as EmailEngine's clients and PHP/Rails-style query
builders write them::

    search[from]=ann@example.com&search[header][X-Foo]=bar
        -> {"search": {"from": "ann@example.com", "header": {"X-Foo": "bar"}}}

Only keys starting with one of ``roots`` are read; everything else is left as it is. A key
that starts with a root but is not ``root[name]...`` (``search``, ``search[``, ``search[]``,
``search[a]b``), or that makes one name both a value and an object, is a 400
``InvalidQueryKey`` naming the key: never silently a criterion dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.errors import ValidationError

MAX_DEPTH = 3  # root[a][b]: the deepest search criterion (header names) plus one
_ROOT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*")
_KEY = re.compile(r"^(?P<root>[A-Za-z_][A-Za-z0-9_]*)(?P<path>(?:\[[^\[\]]+\])+)$")
_SEGMENT = re.compile(r"\[([^\[\]]+)\]")


def _bad_key(key: str, why: str) -> ValidationError:
    return ValidationError(f"query parameter {key!r} {why}", code="InvalidQueryKey", status=400,
                           details={f"query.{key}": why})


def nest_bracketed(params: Mapping[str, str], roots: Iterable[str]) -> dict[str, Any]:
    """``params`` with each ``root[a][b]=v`` moved into ``{root: {a: {b: v}}}``."""
    roots = frozenset(roots)
    nested: dict[str, Any] = {}
    for key, value in params.items():
        found = _ROOT.match(key)
        root = found.group(0) if found else ""
        if root not in roots:
            nested[key] = value
            continue
        match = _KEY.match(key)
        if match is None:
            raise _bad_key(key, f"is not written as {root}[name] or {root}[name][name]")
        segments = _SEGMENT.findall(match.group("path"))
        if len(segments) > MAX_DEPTH - 1:
            raise _bad_key(key, "is nested deeper than any search criterion")
        target = nested.setdefault(root, {})
        for segment in segments[:-1]:
            target = target.setdefault(segment, {})
            if not isinstance(target, dict):
                raise _bad_key(key, f"makes {segment!r} both a value and an object")
        if isinstance(target.get(segments[-1]), dict):
            raise _bad_key(key, f"makes {segments[-1]!r} both a value and an object")
        target[segments[-1]] = value
    return nested
