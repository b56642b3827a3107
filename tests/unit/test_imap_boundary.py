"""The IMAP adapter's boundary, checked on the source: who may import imapclient/imaplib,
and who may touch their private attributes.

- imapclient and imaplib are imported only by ``chalicelib/imap/session.py`` (the client
  and its transports) and ``chalicelib/imap/wire.py`` (what imapclient cannot express);
- only ``wire.py`` reads or writes private attributes of either library (its docstring
  says why each is used). A new need goes into ``wire.py`` with its reason, not elsewhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("chalicelib", "workers", "local")
LIBRARIES = ("imapclient", "imaplib")
IMPORTING_MODULES = {"chalicelib/imap/session.py", "chalicelib/imap/wire.py"}
PRIVATE_ACCESS_MODULES = {"chalicelib/imap/wire.py"}
# Private names of imapclient's IMAPClient and imaplib's IMAP4 that code has been tempted by.
PRIVATE_NAMES = frozenset({
    "_imap", "_new_tag", "_raw_command", "_raw_command_untagged", "_get_line", "_get_response",
    "_command", "_command_complete", "_untagged_response", "_checkok", "_cached_capabilities",
    "_literal", "_quote", "_consume_until_tagged_response", "_simple_command", "_check_resp",
    "_send_literal", "_normalise_folder", "_proc_folder_list", "_timeout",
})
# Attribute names that are private to the libraries only through these objects: imaplib's
# transport state read through the IMAP4 object.
PRIVATE_IMAP4_ATTRIBUTES = frozenset({"untagged_responses", "tagged_commands", "tagnum", "tagpre"})


def python_files() -> list[Path]:
    return sorted(path for top in SCANNED for path in (ROOT / top).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imported_libraries(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [(node.lineno, name) for name in names if name.split(".")[0] in LIBRARIES]
    return found


def private_accesses(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (node.attr in PRIVATE_NAMES or node.attr in PRIVATE_IMAP4_ATTRIBUTES):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            found += [(node.lineno, alias.name) for alias in node.names if alias.name in PRIVATE_NAMES]
    return found


def violations(check, allowed: set[str]) -> list[str]:
    found = []
    for path in python_files():
        name = relative(path)
        if name in allowed:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=name)
        found += [f"{name}:{line}: {what}" for line, what in check(tree)]
    return found


def test_only_the_session_and_wire_modules_import_imapclient_or_imaplib():
    # Given every module of the application; Then: imapclient/imaplib appear only in the two
    assert violations(imported_libraries, IMPORTING_MODULES) == []


def test_only_the_wire_module_touches_private_attributes_of_imapclient_or_imaplib():
    assert violations(private_accesses, PRIVATE_ACCESS_MODULES) == []


@pytest.mark.parametrize(("source", "expected"), [
    ("import imaplib", [(1, "imaplib")]),
    ("from imapclient.response_parser import parse_response", [(1, "imapclient.response_parser")]),
    ("from chalicelib.imap import wire", []),
])
def test_the_import_scan_sees_every_form(source, expected):
    assert imported_libraries(ast.parse(source)) == expected


@pytest.mark.parametrize(("source", "expected"), [
    ("session.client._imap.untagged_responses.pop('X')", [(1, "untagged_responses"), (1, "_imap")]),
    ("self._imap._new_tag()", [(1, "_new_tag"), (1, "_imap")]),
    ("from imapclient.imapclient import _quote", [(1, "_quote")]),
    ("conn.session.fetch([1], ['FLAGS'])", []),
])
def test_the_private_scan_sees_every_form(source, expected):
    assert sorted(private_accesses(ast.parse(source))) == sorted(expected)
