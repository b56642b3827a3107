"""Bracketed query keys (``search[from]=ann@example.com``) read into the nested object they spell.

OpenAPI's ``deepObject`` style, one level deeper where the object has an object inside
(``search[header][X-Priority]=1``), as EmailEngine's clients and PHP/Rails-style query
builders write them::

    search[from]=ann@example.com&search[header][X-Foo]=bar
        -> {"search": {"from": "ann@example.com", "header": {"X-Foo": "bar"}}}

Only keys starting with one of ``roots`` are read; everything else is left as it is. A key
that starts with a root but is not ``root[name]`` or ``root[name][key]`` (``search``,
``search[``, ``search[a]b``), or that makes one name both a value and an object, is a 400
``InvalidQueryKey`` naming the key: never silently a criterion dropped. Names the object does
not have (``search[]``, ``search[a][b][c]`` reads as member ``a`` with key ``b][c``) are
left for the model to refuse, as the same names in a JSON body are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.errors import ValidationError

_ROOT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*")
# root[name] or root[name][key]: ``key`` runs to the last "]", brackets and all, because it is
# a header name there (search[header][X-Foo]) and RFC 5322 lets a field name contain them.
_KEY = re.compile(r"^(?P<root>[A-Za-z_][A-Za-z0-9_]*)\[(?P<name>[^\[\]]*)\](?:\[(?P<key>.*)\])?$", re.DOTALL)


def _bad_key(key: str, why: str) -> ValidationError:
    return ValidationError(f"query parameter {key!r} {why}", code="InvalidQueryKey", status=400,
                           details={f"query.{key}": why})


def nest_bracketed(params: Mapping[str, str], roots: Iterable[str]) -> dict[str, Any]:
    """``params`` with each ``root[a]=v`` / ``root[a][b]=v`` moved into ``{root: {a: v}}`` / ``{root: {a: {b: v}}}``."""
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
            raise _bad_key(key, f"is not written as {root}[name] or {root}[name][key]")
        target = nested.setdefault(root, {})
        name, inner = match.group("name"), match.group("key")
        if inner is None:
            if isinstance(target.get(name), dict):
                raise _bad_key(key, f"makes {name!r} both a value and an object")
            target[name] = value
            continue
        member = target.setdefault(name, {})
        if not isinstance(member, dict):
            raise _bad_key(key, f"makes {name!r} both a value and an object")
        member[inner] = value
    return nested
