"""Which AWS actions, on which of the stack's resources, the code of an entry point performs.

Chalice's policy generator sees only boto3 calls made directly in ``app.py``; it is blind
to pynamodb, to Powertools' DynamoDB persistence layer and to clients created lazily in
other modules. This analyzer reads the source instead (see deploy/codegraph.py for what
"reachable" means) and finds three kinds of AWS use:

    boto3 client calls     client.send_message_batch(...)     -> sqs:SendMessage      (all stack queues)
                           kms.generate_data_key(...)         -> kms:GenerateDataKey  (the stack key)
                           s3.generate_presigned_url("get_object") -> s3:GetObject    (bucket objects)
    pynamodb operations    AccountItem.get(...)               -> dynamodb:GetItem     on the accounts table
                           item.save() / TransactWrite.save   -> dynamodb:PutItem     on the item's table
                           Model.index.query(...)             -> dynamodb:Query       on that index
    Powertools idempotency DynamoDBPersistenceLayer(table_name=...) -> Get/Put/Update/DeleteItem

Boto3 calls are recognised by method name: in a module that creates (or obtains from a
client factory) a client of service S, a call ``x.m(...)`` whose name is an operation of
S (botocore's service model: ``send_message_batch`` = SendMessageBatch) is that operation.
The receiver's exact queue/bucket is a run-time value, so those actions are scoped to
every resource of that type in the stack. DynamoDB is scoped per table: models name their
table in ``Meta.table_name = settings.table_name("accounts")``, and receivers are typed
by a small flow-insensitive inference inside each function (constructor calls, results
of get/query/scan, ``with Model.batch_write() as batch``, ``with TransactWrite(...)``,
tuple returns such as ``lease_check``).

Failure modes (raise :class:`AnalysisError`, so a package never ships a policy that
silently misses a table): a model whose table name is not a literal or a module constant;
an item in a transaction whose model cannot be inferred and whose module constructs no model.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import botocore.session
from botocore import xform_name

from deploy.codegraph import CodeGraph, Module, Node

MODEL_BASES = {"pynamodb.models:Model"}
INDEX_BASES = {"pynamodb.indexes:GlobalSecondaryIndex", "pynamodb.indexes:LocalSecondaryIndex"}
TRANSACT_WRITE = "pynamodb.transactions:TransactWrite"
TRANSACT_GET = "pynamodb.transactions:TransactGet"
PERSISTENCE_LAYER = ":DynamoDBPersistenceLayer"  # wherever Powertools exports it from
PERSISTENCE_ACTIONS = ("GetItem", "PutItem", "UpdateItem", "DeleteItem")  # Powertools' documented needs

CLASS_OPERATIONS = {"get": "GetItem", "batch_get": "BatchGetItem", "query": "Query", "scan": "Scan",
                    "batch_write": "BatchWriteItem", "describe_table": "DescribeTable", "exists": "DescribeTable"}
INDEX_OPERATIONS = {"query": "Query", "scan": "Scan", "count": "Query"}
INSTANCE_OPERATIONS = {"save": "PutItem", "update": "UpdateItem", "delete": "DeleteItem", "refresh": "GetItem"}
ITERATING_OPERATIONS = {"query", "scan", "batch_get"}
PASS_THROUGH_BUILTINS = {"list", "sorted", "iter", "reversed", "tuple", "set"}

# Operations that need no permission (AWS: "No permissions are required to perform this operation").
PERMISSION_FREE = {"sts:GetCallerIdentity"}
# SQS authorises its batch operations with the single-message action.
ACTION_ALIASES = {"sqs:SendMessageBatch": "sqs:SendMessage", "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
                  "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
                  "s3:HeadObject": "s3:GetObject", "s3:HeadBucket": "s3:ListBucket",
                  "s3:ListObjectsV2": "s3:ListBucket", "s3:ListObjects": "s3:ListBucket",
                  "s3:DeleteObjects": "s3:DeleteObject",
                  # S3 authorises a multipart upload's steps with PutObject (AbortMultipartUpload is its own).
                  "s3:CreateMultipartUpload": "s3:PutObject", "s3:UploadPart": "s3:PutObject",
                  "s3:CompleteMultipartUpload": "s3:PutObject"}
PRESIGNING_METHODS = {"generate_presigned_url", "generate_presigned_post"}
CLIENT_CONSTRUCTORS = {"client", "resource"}


class AnalysisError(ValueError):
    """The code uses AWS in a way the analyzer cannot scope to the stack's resources."""


@dataclass(frozen=True, order=True)
class Grant:
    """One action on one symbolic resource: ("table", short name), ("index", table, index),
    or (service,) for "every resource of this service in the stack"."""

    action: str
    resource: tuple[str, ...]


@dataclass
class Usage:
    grants: set[Grant] = field(default_factory=set)
    sources: dict[Grant, set[str]] = field(default_factory=dict)  # grant -> node keys that need it

    def add(self, grant: Grant, node_key: str) -> None:
        self.grants.add(grant)
        self.sources.setdefault(grant, set()).add(node_key)

    def merge(self, other: Usage) -> None:
        for grant in other.grants:
            for source in other.sources.get(grant, ()):
                self.add(grant, source)

    def actions(self) -> set[str]:
        return {grant.action for grant in self.grants}


@functools.lru_cache(maxsize=32)
def _operations(service: str) -> dict[str, str]:
    """boto3 method name -> operation name for one service (``send_message`` -> ``SendMessage``)."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(operation): operation for operation in model.operation_names}


def iam_action(service: str, operation: str) -> str:
    action = f"{service}:{operation}"
    return ACTION_ALIASES.get(action, action)


@dataclass(frozen=True)
class _Model:
    key: str
    table: str
    indexes: dict[str, str]  # attribute name -> index name


@dataclass(frozen=True)
class _Type:
    kind: str  # class | instance | items | index | batch | transact_write | transact_get
    model: _Model | None = None
    index: str | None = None


class AwsUsageAnalyzer:
    """Facts per node, computed once; :meth:`usage` unions them over reachable nodes."""

    def __init__(self, graph: CodeGraph) -> None:
        self.graph = graph
        self.models = self._find_models()
        self.factories = self._find_client_factories()
        self._facts: dict[str, Usage] = {}

    # -- models -----------------------------------------------------------------------

    def _class_bases(self, module: Module, node: ast.ClassDef) -> set[str]:
        bases = set()
        for base in node.bases:
            target = self.graph.resolve(module, base) or _external_name(module, base)
            if target:
                bases.add(target)
        return bases

    def _find_models(self) -> dict[str, _Model]:
        classes = {node.key: (module, node.definition) for module in self.graph.modules.values()
                   for node in module.nodes.values() if isinstance(node.definition, ast.ClassDef)}
        index_names: dict[str, str] = {}
        models: dict[str, _Model] = {}
        for key, (module, node) in classes.items():
            if self._class_bases(module, node) & INDEX_BASES:
                index_names[key] = _meta_value(node, "index_name", self.graph, module) or node.name
        bases = {key: self._class_bases(module, node) for key, (module, node) in classes.items()}
        model_keys: set[str] = set()
        while True:  # subclasses of project models are models too
            found = {key for key, names in bases.items() if names & (MODEL_BASES | model_keys)}
            if found == model_keys:
                break
            model_keys = found
        for key in sorted(model_keys):
            module, node = classes[key]
            table = self._table_of(module, node)
            indexes = {}
            for statement in node.body:
                if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call):
                    target = self.graph.resolve(module, statement.value.func)
                    if target in index_names:
                        for name in (t.id for t in statement.targets if isinstance(t, ast.Name)):
                            indexes[name] = index_names[target]
            models[key] = _Model(key, table, indexes)
        return models

    def _table_of(self, module: Module, node: ast.ClassDef) -> str:
        for statement in _meta_body(node):
            if isinstance(statement, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "table_name" for t in statement.targets):
                short = _table_name_argument(statement.value, self.graph, module)
                if short is None:
                    raise AnalysisError(f"{module.name}.{node.name}: Meta.table_name must be "
                                        "settings.table_name(<literal or constant>)")
                return short
        raise AnalysisError(f"{module.name}.{node.name}: a pynamodb model without Meta.table_name")

    # -- boto3 clients ----------------------------------------------------------------

    def _find_client_factories(self) -> dict[str, set[str]]:
        """Node key -> services of the boto3 clients it creates."""
        factories: dict[str, set[str]] = {}
        for module in self.graph.modules.values():
            for node in module.nodes.values():
                services = set(_client_services(module, node.tree))
                if services:
                    factories[node.key] = services
        return factories

    def _services_in_scope(self, module: Module) -> set[str]:
        services: set[str] = set()
        for node in module.nodes.values():
            services |= self.factories.get(node.key, set())
            for reference in node.references:
                services |= self.factories.get(reference, set())
        return services

    # -- facts --------------------------------------------------------------------------

    def facts(self, key: str) -> Usage:
        if key not in self._facts:
            node = self.graph.node(key)
            usage = Usage()
            if node is not None:
                module = self.graph.modules[node.module]
                self._boto3_facts(module, node, usage)
                _FunctionTypes(self, module, node, usage).run()
                self._persistence_facts(module, node, usage)
            self._facts[key] = usage
        return self._facts[key]

    def usage(self, roots: Iterable[str]) -> Usage:
        total = Usage()
        for key in sorted(self.graph.reachable(roots)):
            total.merge(self.facts(key))
        return total

    def _boto3_facts(self, module: Module, node: Node, usage: Usage) -> None:
        services = self._services_in_scope(module)
        if not services:
            return
        not_clients = self._non_client_names(module, node)
        for call in _calls(node.tree):
            if not isinstance(call.func, ast.Attribute) or not self._may_be_client(module, call.func.value,
                                                                                   not_clients):
                continue
            method = call.func.attr
            if method in PRESIGNING_METHODS and call.args:
                method = self.graph.constant(module, call.args[0]) or ""
            for service in sorted(services):
                operation = _operations(service).get(method)
                if operation:
                    action = iam_action(service, operation)
                    if action not in PERMISSION_FREE:
                        usage.add(Grant(action, (service,)), node.key)

    def _is_client_call(self, module: Module, call: ast.Call) -> bool:
        if isinstance(call.func, ast.Attribute) and call.func.attr in CLIENT_CONSTRUCTORS:
            return True
        target = self.graph.resolve(module, call.func)
        return target in self.factories

    def _non_client_names(self, module: Module, node: Node) -> set[str]:
        """Local names bound to something built by a non-factory call (``aead = AESGCM(key)``)."""
        names = set()
        for statement in ast.walk(node.tree):
            if isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call) \
                    and not self._is_client_call(module, statement.value):
                names |= {target.id for target in statement.targets if isinstance(target, ast.Name)}
        return names

    def _may_be_client(self, module: Module, receiver: ast.AST, not_clients: set[str]) -> bool:
        """``AESGCM(key).decrypt(...)`` is not KMS Decrypt: a receiver built by another call is no client."""
        if isinstance(receiver, ast.Call):
            return self._is_client_call(module, receiver)
        if isinstance(receiver, ast.Name):
            return receiver.id not in not_clients
        return isinstance(receiver, ast.Attribute)

    def _persistence_facts(self, module: Module, node: Node, usage: Usage) -> None:
        for call in _calls(node.tree):
            external = _external_name(module, call.func) or ""
            if not (external.startswith("aws_lambda_powertools") and external.endswith(PERSISTENCE_LAYER)):
                continue
            table_argument = next((k.value for k in call.keywords if k.arg == "table_name"), None)
            short = _table_name_argument(table_argument, self.graph, module) if table_argument else None
            if short is None:
                raise AnalysisError(f"{node.key}: DynamoDBPersistenceLayer(table_name=...) must be "
                                    "settings.table_name(<literal or constant>)")
            for action in PERSISTENCE_ACTIONS:
                usage.add(Grant(f"dynamodb:{action}", ("table", short)), node.key)


class _FunctionTypes:
    """Types of local names inside one node, then the pynamodb operations called on them."""

    def __init__(self, analyzer: AwsUsageAnalyzer, module: Module, node: Node, usage: Usage) -> None:
        self.analyzer = analyzer
        self.graph = analyzer.graph
        self.module = module
        self.node = node
        self.usage = usage
        self.names: dict[str, _Type] = {}

    def run(self) -> None:
        if not self.analyzer.models:
            return
        for _ in range(3):  # flow-insensitive: a few passes let assignments feed each other
            self._bind_all()
        for call in _calls(self.node.tree):
            self._operation(call)

    def _model_class(self, expression: ast.AST) -> _Model | None:
        target = self.graph.resolve(self.module, expression)
        return self.analyzer.models.get(target) if target else None

    def type_of(self, expression: ast.AST | None) -> _Type | None:
        if expression is None:
            return None
        if isinstance(expression, ast.Name) and expression.id in self.names:
            return self.names[expression.id]
        model = self._model_class(expression)
        if model is not None:
            return _Type("class", model)
        if isinstance(expression, ast.Attribute):
            owner = self.type_of(expression.value)
            if owner and owner.kind == "class" and expression.attr in owner.model.indexes:
                return _Type("index", owner.model, owner.model.indexes[expression.attr])
            return None
        if isinstance(expression, ast.Call):
            return self._call_type(expression)
        return None

    def _call_type(self, call: ast.Call) -> _Type | None:
        external = _external_name(self.module, call.func)
        if external == TRANSACT_WRITE:
            return _Type("transact_write")
        if external == TRANSACT_GET:
            return _Type("transact_get")
        if isinstance(call.func, ast.Name) and call.func.id in PASS_THROUGH_BUILTINS and call.args:
            return self.type_of(call.args[0])
        callee = self.type_of(call.func) if not isinstance(call.func, ast.Attribute) else None
        if callee and callee.kind == "class":
            return _Type("instance", callee.model)
        if isinstance(call.func, ast.Attribute):
            owner = self.type_of(call.func.value)
            method = call.func.attr
            if owner and owner.kind == "class":
                if method == "get":
                    return _Type("instance", owner.model)
                if method in ITERATING_OPERATIONS:
                    return _Type("items", owner.model)
                if method == "batch_write":
                    return _Type("batch", owner.model)
            if owner and owner.kind == "index" and method in ITERATING_OPERATIONS:
                return _Type("items", owner.model)
        return None

    def _returned(self, call: ast.Call, position: int) -> _Type | None:
        """Element ``position`` of a tuple returned by a project function (``lease_check``)."""
        target = self.graph.resolve(self.module, call.func)
        node = self.graph.node(target) if target else None
        if node is None or not isinstance(node.tree, ast.FunctionDef):
            return None
        module = self.graph.modules[node.module]
        for statement in ast.walk(node.tree):
            if isinstance(statement, ast.Return) and isinstance(statement.value, ast.Tuple):
                elements = statement.value.elts
                if position < len(elements):
                    target = self.graph.resolve(module, elements[position])
                    model = self.analyzer.models.get(target) if target else None
                    if model is not None:
                        return _Type("class", model)
        return None

    def _bind(self, target: ast.AST, value_type: _Type | None) -> None:
        if isinstance(target, ast.Name) and value_type is not None:
            self.names[target.id] = value_type

    def _bind_all(self) -> None:
        for statement in ast.walk(self.node.tree):
            if isinstance(statement, ast.Assign | ast.AnnAssign | ast.NamedExpr):
                targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                for target in targets:
                    if isinstance(target, ast.Tuple) and isinstance(statement.value, ast.Call):
                        for position, element in enumerate(target.elts):
                            self._bind(element, self._returned(statement.value, position))
                    else:
                        self._bind(target, self.type_of(statement.value))
            elif isinstance(statement, ast.For | ast.comprehension):
                iterated = self.type_of(statement.iter)
                if iterated and iterated.kind == "items":
                    self._bind(statement.target, _Type("instance", iterated.model))
            elif isinstance(statement, ast.withitem) and statement.optional_vars is not None:
                self._bind(statement.optional_vars, self.type_of(statement.context_expr))
            elif isinstance(statement, ast.arg) and statement.annotation is not None:
                model = self._model_class(statement.annotation)
                if model is not None:
                    self._bind(ast.Name(statement.arg), _Type("instance", model))

    def _grant(self, action: str, resource: tuple[str, ...]) -> None:
        self.usage.add(Grant(f"dynamodb:{action}", resource), self.node.key)

    def _constructed_models(self) -> list[_Model]:
        """Models this module constructs: the fallback owner of a transaction item of unknown type."""
        found = []
        for node in self.module.nodes.values():
            for call in _calls(node.tree):
                model = self._model_class(call.func)
                if model is not None and model not in found:
                    found.append(model)
        return found

    def _operation(self, call: ast.Call) -> None:
        if not isinstance(call.func, ast.Attribute):
            return
        owner = self.type_of(call.func.value)
        if owner is None:
            return
        method = call.func.attr
        if owner.kind == "class":
            if method == "count":
                self._grant("Query" if call.args or call.keywords else "DescribeTable", ("table", owner.model.table))
            elif method in CLASS_OPERATIONS:
                self._grant(CLASS_OPERATIONS[method], ("table", owner.model.table))
        elif owner.kind == "index" and method in INDEX_OPERATIONS:
            self._grant(INDEX_OPERATIONS[method], ("index", owner.model.table, owner.index))
        elif owner.kind == "instance" and method in INSTANCE_OPERATIONS:
            self._grant(INSTANCE_OPERATIONS[method], ("table", owner.model.table))
        elif owner.kind == "transact_write" and method in {"save", "update", "delete", "condition_check"}:
            action = "ConditionCheckItem" if method == "condition_check" else INSTANCE_OPERATIONS[method]
            item = self.type_of(call.args[0]) if call.args else None
            models = [item.model] if item and item.model else self._constructed_models()
            if not models:
                raise AnalysisError(f"{self.node.key}: cannot tell which table a transaction {method} writes")
            for model in models:
                self._grant(action, ("table", model.table))
        elif owner.kind == "transact_get" and method == "get" and call.args:
            item = self.type_of(call.args[0])
            if item and item.model:
                self._grant("GetItem", ("table", item.model.table))


# -- small AST helpers ---------------------------------------------------------------------


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def _external_name(module: Module, expression: ast.AST) -> str | None:
    """``module:name`` for a name imported from outside the project (``Model`` -> pynamodb.models:Model)."""
    if isinstance(expression, ast.Name):
        target = module.imports.get(expression.id)
        return target if target and ":" in target else None
    if isinstance(expression, ast.Attribute) and isinstance(expression.value, ast.Name):
        base = module.imports.get(expression.value.id)
        if base and ":" not in base:
            return f"{base}:{expression.attr}"
    return None


def _meta_body(node: ast.ClassDef) -> list[ast.stmt]:
    for statement in node.body:
        if isinstance(statement, ast.ClassDef) and statement.name == "Meta":
            return statement.body
    return []


def _meta_value(node: ast.ClassDef, name: str, graph: CodeGraph, module: Module) -> str | None:
    for statement in _meta_body(node):
        if isinstance(statement, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name
                                                      for t in statement.targets):
            return graph.constant(module, statement.value)
    return None


def _table_name_argument(expression: ast.AST | None, graph: CodeGraph, module: Module) -> str | None:
    """``settings.table_name("accounts")`` or ``table_name(CONSTANT)`` -> ``accounts``."""
    if not isinstance(expression, ast.Call) or not expression.args:
        return None
    function = expression.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    if name != "table_name":
        return None
    return graph.constant(module, expression.args[0])


def _client_services(module: Module, tree: ast.AST) -> Iterator[str]:
    """Services of ``boto3.client("sqs")`` / ``session.client("kms")`` calls inside ``tree``."""
    known = _known_services()
    for call in _calls(tree):
        function = call.func
        if not (isinstance(function, ast.Attribute) and function.attr in CLIENT_CONSTRUCTORS):
            continue
        service = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "service_name"),
                                                      None)
        if isinstance(service, ast.Constant) and service.value in known:
            yield service.value


@functools.lru_cache(maxsize=1)
def _known_services() -> frozenset[str]:
    return frozenset(botocore.session.get_session().get_available_services())
