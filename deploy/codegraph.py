"""What code can run from an entry point: a static reference graph of the project's modules.

The IAM policies of the deployed functions are derived from the code (deploy/aws_actions.py),
so "which code does this Lambda run" must be answered without running it. This module
parses every project module once and splits it into *nodes*::

    module chalicelib.store.accounts
      node  chalicelib.store.accounts:get_account     a top-level function (nested defs included)
      node  chalicelib.store.accounts:StoredAccount   a class, all its methods together
      node  chalicelib.store.accounts:_settings       a top-level assignment (its value's references)

A node *references* every project name its code mentions, resolved through the module's
imports (``from chalicelib.events import queue`` + ``queue.queue_url`` ->
``chalicelib.events.queue:queue_url``), and records the attribute names it mentions.
:meth:`CodeGraph.reachable` walks references from a set of roots; methods are nodes of
their own (``module:Class.method``) and join in a fixpoint::

    method C.m is reachable  <=>  class C is reachable  and  ( some reachable node mentions ".m"
                                                              or m is a dunder or decorated
                                                              or C subclasses a library class )

Over-approximation (why the result is safe to grant from):
- a referenced function counts as called (callbacks, registries, defaults);
- a method counts once its class is used and its name appears anywhere reachable, whatever
  the receiver (``broker.acquire()`` on an instance of unknown type); methods a library
  calls by convention (dunders, ``run``/``do_GET`` of library subclasses, pydantic
  validators) count with their class;
- nested functions belong to their enclosing function.
It cannot see names built at run time (``getattr`` with a computed name, ``importlib``);
the house style has none on AWS paths. Module-level statements are not roots: importing
a module must not call AWS (clients are created lazily).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCE_PACKAGES = ("chalicelib", "workers")
SOURCE_MODULES = ("app",)


@dataclass
class Node:
    """One top-level definition of a module."""

    key: str  # "module:name"
    module: str
    name: str
    tree: ast.AST
    references: set[str] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)  # attribute names mentioned (".acquire")
    definition: ast.AST | None = None  # the def/class statement (classes: their tree omits the methods)
    owner: str | None = None  # methods: the key of their class
    always_with_owner: bool = False  # methods a library or the interpreter calls by convention


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: dict[str, str] = field(default_factory=dict)  # local name -> "module" or "module:name"
    nodes: dict[str, Node] = field(default_factory=dict)  # top-level name -> node
    constants: dict[str, str] = field(default_factory=dict)  # NAME = "literal" at top level


def module_name_of(root: Path, path: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute_import(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, node.module] if node.module else base)


def _is_builtin_base(base: ast.AST) -> bool:
    return isinstance(base, ast.Name) and base.id in {"object", "Exception", "ValueError", "LookupError",
                                                        "RuntimeError", "KeyError", "TypeError"}


def _is_property(method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return all((isinstance(d, ast.Name) and d.id in {"property", "staticmethod", "classmethod"})
               or (isinstance(d, ast.Attribute) and d.attr in {"setter", "getter"})
               for d in method.decorator_list)


def _bound_names(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _bound_names(element)


class CodeGraph:
    """Every project module under ``root``, indexed by top-level definition."""

    def __init__(self, root: Path, packages: Iterable[str] = SOURCE_PACKAGES,
                 modules: Iterable[str] = SOURCE_MODULES) -> None:
        self.root = root
        self.modules: dict[str, Module] = {}
        paths = [path for package in packages for path in sorted((root / package).rglob("*.py"))]
        paths += [root / f"{name}.py" for name in modules if (root / f"{name}.py").exists()]
        for path in paths:
            name = module_name_of(root, path)
            self.modules[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for module in self.modules.values():
            self._index(module)
        for module in self.modules.values():
            for node in module.nodes.values():
                node.references = {target for expression in ast.walk(node.tree)
                                   if (target := self.resolve(module, expression)) is not None}
                node.attributes = {expression.attr for expression in ast.walk(node.tree)
                                   if isinstance(expression, ast.Attribute)}
        self._methods: dict[str, list[Node]] = {}
        for module in self.modules.values():
            for node in module.nodes.values():
                if node.owner:
                    self._methods.setdefault(node.owner, []).append(node)

    # -- indexing ------------------------------------------------------------------------

    def _index(self, module: Module) -> None:
        is_package = module.path.name == "__init__.py"
        for statement in ast.walk(module.tree):
            if isinstance(statement, ast.Import):
                for alias in statement.names:
                    if alias.asname:
                        module.imports[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        module.imports[top] = top
            elif isinstance(statement, ast.ImportFrom):
                source = _absolute_import(module.name, statement, is_package)
                for alias in statement.names:
                    submodule = f"{source}.{alias.name}"
                    target = submodule if submodule in self.modules else f"{source}:{alias.name}"
                    module.imports[alias.asname or alias.name] = target
        for statement in module.tree.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                module.nodes[statement.name] = Node(f"{module.name}:{statement.name}", module.name,
                                                    statement.name, statement)
            elif isinstance(statement, ast.ClassDef):
                self._index_class(module, statement)
            elif isinstance(statement, ast.Assign | ast.AnnAssign):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                value = statement.value
                for target in targets:
                    for name in _bound_names(target):
                        module.nodes[name] = Node(f"{module.name}:{name}", module.name, name, statement)
                        if isinstance(value, ast.Constant) and isinstance(value.value, str):
                            module.constants[name] = value.value

    def _index_class(self, module: Module, statement: ast.ClassDef) -> None:
        """A node for the class body (bases, decorators, class attributes) and one per method."""
        key = f"{module.name}:{statement.name}"
        methods = [item for item in statement.body if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)]
        class_level = [item for item in statement.body if item not in methods]
        header = [ast.Expr(expression) for expression in [*statement.bases, *statement.decorator_list,
                                                          *(k.value for k in statement.keywords)]]
        module.nodes[statement.name] = Node(key, module.name, statement.name,
                                            ast.Module(body=[*header, *class_level], type_ignores=[]),
                                            definition=statement)
        library_base = any(self.resolve(module, base) is None and not _is_builtin_base(base)
                           for base in statement.bases)
        for method in methods:
            name = f"{statement.name}.{method.name}"
            conventional = (method.name.startswith("__") or (bool(method.decorator_list) and not _is_property(method))
                            or library_base)
            module.nodes[name] = Node(f"{module.name}:{name}", module.name, name, method, owner=key,
                                      always_with_owner=conventional)

    # -- resolution ----------------------------------------------------------------------

    def _follow(self, target: str, seen: frozenset[str] = frozenset()) -> str | None:
        """A "module:name" through re-exports to where it is defined (None: not project code)."""
        if ":" not in target:
            return target if target in self.modules else None
        module_name, name = target.split(":", 1)
        module = self.modules.get(module_name)
        if module is None or target in seen:
            return None
        if name in module.nodes:
            return target
        if name in module.imports:
            return self._follow(module.imports[name], seen | {target})
        return None

    def resolve(self, module: Module, expression: ast.AST) -> str | None:
        """The project definition an expression names ("module" or "module:name"), if any."""
        if isinstance(expression, ast.Name):
            if expression.id in module.nodes:
                return f"{module.name}:{expression.id}"
            if expression.id in module.imports:
                return self._follow(module.imports[expression.id])
            return None
        if isinstance(expression, ast.Attribute):
            base = self.resolve(module, expression.value)
            if base is None or ":" in base:
                return None
            submodule = f"{base}.{expression.attr}"
            return submodule if submodule in self.modules else self._follow(f"{base}:{expression.attr}")
        return None

    def node(self, key: str) -> Node | None:
        if ":" not in key:
            return None
        module_name, name = key.split(":", 1)
        module = self.modules.get(module_name)
        return module.nodes.get(name) if module else None

    def constant(self, module: Module, expression: ast.AST) -> str | None:
        """A string literal, or a top-level string constant named directly or through an import."""
        if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
            return expression.value
        target = self.resolve(module, expression)
        if target and ":" in target:
            owner, name = target.split(":", 1)
            return self.modules[owner].constants.get(name)
        return None

    # -- reachability --------------------------------------------------------------------

    def reachable(self, roots: Iterable[str]) -> set[str]:
        """Keys of every node reachable from ``roots`` (node keys): references plus method fixpoint."""
        seen: set[str] = set()
        attributes: set[str] = set()
        pending = [key for key in roots if self.node(key) is not None]
        while pending:
            while pending:
                key = pending.pop()
                node = self.node(key)
                if key in seen or node is None:  # None: a module object, not a definition
                    continue
                seen.add(key)
                pending.extend(reference for reference in node.references if reference not in seen)
                if node.owner:
                    pending.append(node.owner)  # a method runs in an instance of its class
                attributes |= node.attributes
            for owner in [key for key in seen if key in self._methods]:
                for method in self._methods[owner]:
                    if method.key not in seen and (method.always_with_owner
                                                   or method.name.split(".", 1)[1] in attributes):
                        pending.append(method.key)
        return seen

    def _key_of_definition(self, code_or_class: Any) -> str | None:
        if inspect.isclass(code_or_class):
            module, name = code_or_class.__module__, code_or_class.__qualname__.split(".")[0]
        else:
            try:
                module = module_name_of(self.root.resolve(), Path(code_or_class.co_filename).resolve())
            except ValueError:  # not project code (a library)
                return None
            parts = [part for part in code_or_class.co_qualname.split(".") if part != "<locals>"]
            for depth in (2, 1):  # Class.method, else the top-level function
                key = f"{module}:{'.'.join(parts[:depth])}"
                if len(parts) >= depth and self.node(key) is not None:
                    return key
            return None
        key = f"{module}:{name}"
        return key if self.node(key) is not None else None

    def root_keys(self, handler: Any) -> set[str]:
        """The nodes a registered handler object runs: its code, what it wraps, what it closes over.

        Decorators such as ``api_route`` register a wrapper whose code calls the real handler
        through a closure variable (``functools.wraps`` also records it as ``__wrapped__``);
        Chalice's event handlers and ``functools.partial`` keep the function in ``.func``.
        """
        keys: set[str] = set()
        seen: set[int] = set()
        pending = [handler]
        while pending:
            current = pending.pop()
            if current is None or id(current) in seen:
                continue
            seen.add(id(current))
            if inspect.isclass(current):
                key = self._key_of_definition(current)
                keys.update([key] if key else [])
                continue
            inner = getattr(current, "func", None)
            if callable(inner):
                pending.append(inner)
            code = getattr(current, "__code__", None)
            if code is None:
                continue
            key = self._key_of_definition(code)
            keys.update([key] if key else [])
            pending.append(getattr(current, "__wrapped__", None))
            for cell in getattr(current, "__closure__", None) or ():
                try:
                    pending.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    continue
        return keys
