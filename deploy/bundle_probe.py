"""What the functions import, found in the bundle itself: ``python -I -S bundle_probe.py <dir> <service>...``.

Run by deploy/bundle.py (and the bundle tests) in a Lambda sandbox in miniature: no
site-packages, no repository, only the standard library and the unzipped bundle on
sys.path. It imports app.py (the module every function's Handler names), every module of
chalicelib, and every module those name in any import statement, module level or inside a
function (the lazy imports of a request: authlib, ...); then creates a client of each
service and reads every file /docs serves. It prints JSON: the files of the bundle that
were opened or imported, the modules imported, those imported from source for want of
bytecode, and the imports that failed (a missing dependency: imports under
``if TYPE_CHECKING:`` are not tried).

Standard library only, besides the bundle: this file runs without the repository's environment.
"""

import ast
import importlib
import json
import os
import sys

root = os.path.realpath(sys.argv[1])
services = sys.argv[2:]
opened = set()


def record_open(event, arguments):
    if event == "open" and isinstance(arguments[0], str):
        path = os.path.realpath(arguments[0])
        if path.startswith(root + os.sep) and os.path.isfile(path):
            opened.add(path)


def code_files():
    yield os.path.join(root, "app.py")
    for directory, _, names in os.walk(os.path.join(root, "chalicelib")):
        yield from (os.path.join(directory, name) for name in sorted(names) if name.endswith(".py"))


def module_name(path):
    relative = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
    return relative.removesuffix(".__init__")


def type_checking_only(node):
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (getattr(test, "id", None) == "TYPE_CHECKING"
                                         or getattr(test, "attr", None) == "TYPE_CHECKING")


def imported_names(path):
    """Absolute module names the file imports at run time, anywhere in it (not under TYPE_CHECKING)."""
    with open(path, encoding="utf-8") as handle:
        pending = [ast.parse(handle.read(), path)]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        pending.extend(node.orelse if type_checking_only(node) else ast.iter_child_nodes(node))


sys.path.insert(0, root)
sys.dont_write_bytecode = True  # /var/task is read-only in Lambda: nothing may be cached on the way
sys.addaudithook(record_open)

failed = {}
names = [module_name(path) for path in code_files()]
names += sorted({name for path in code_files() for name in imported_names(path)} - set(names))
for name in names:
    try:
        importlib.import_module(name)
    except ImportError as error:
        failed[name] = str(error)

import boto3  # noqa: E402 - after the app, as a function imports it

for service in services:
    boto3.client(service, region_name="us-east-1")

# The files the API reads at run time: /docs serves them from the bundle.
from chalicelib.services import docs_assets  # noqa: E402

for asset_name in docs_assets.ASSETS:
    docs_assets.read_asset(asset_name)

loaded = set(opened)
modules = []
without_bytecode = []
for module in list(sys.modules.values()):
    source = getattr(module, "__file__", None)
    if not source or not os.path.realpath(source).startswith(root + os.sep):
        continue
    modules.append(module.__name__)
    loaded.add(os.path.realpath(source))
    cached = getattr(module, "__cached__", None)
    if cached and os.path.exists(cached):
        loaded.add(os.path.realpath(cached))
    elif source.endswith(".py"):
        without_bytecode.append(module.__name__)
print(json.dumps({"loaded": sorted(os.path.relpath(path, root) for path in loaded),
                  "modules": sorted(modules), "without_bytecode": sorted(without_bytecode), "failed": failed,
                  "chalice": os.path.relpath(sys.modules["chalice"].__file__, root)}))
