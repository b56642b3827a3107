"""Create the stack's tables, queues and buckets in moto from ``template.yaml``.

``template.yaml`` is the one definition of the AWS resources: ``chalice package`` merges it
into the deployed stack, and the local runner and the test fixtures call
:func:`create_resources` to build the same resources in moto, so local and AWS cannot drift.

Two steps, the first one pure:

    template.yaml --load_template--> dict --plan_resources--> [PlannedResource] --create--> moto
    (!Ref/!Sub/!GetAtt become         names, ARNs and create requests resolved,
     {"Ref"}/{"Fn::Sub"}/...)         ordered so a dead-letter queue precedes its users

What is created (everything else in the template, e.g. the KMS key, is skipped):

- ``AWS::DynamoDB::Table``: TableName, KeySchema, AttributeDefinitions, BillingMode,
  ProvisionedThroughput, GlobalSecondaryIndexes, LocalSecondaryIndexes,
  TimeToLiveSpecification. SSE (KMS) and point-in-time recovery are AWS-only concerns.
- ``AWS::SQS::Queue``: QueueName and the attributes in :data:`QUEUE_ATTRIBUTES`, with
  RedrivePolicy resolved to the dead-letter queue's ARN. KmsMasterKeyId is skipped.
- ``AWS::S3::Bucket``: BucketName.

Invariants:

- Idempotent: a resource that already exists is left exactly as it is (not updated).
- Only the properties above are resolved, so intrinsics elsewhere (a KMS ``!Ref``) cannot
  break local mode; an intrinsic that cannot be resolved in a property that is used
  raises :class:`TemplateError` naming the resource.
- Pseudo parameters: ``AWS::StackName`` is the ``stack_name`` argument, ``AWS::Region``
  the ``region`` argument, ``AWS::AccountId`` is moto's ``123456789012``, ``AWS::Partition``
  is ``aws``. A resource without an explicit name gets ``<stack>-<LogicalId>`` (plus
  ``.fifo`` for FIFO queues) instead of CloudFormation's random suffix.
- No client is created at import time: each call builds its own from its arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

ACCOUNT_ID = "123456789012"  # moto's default account
PARTITION = "aws"
# moto accepts any credentials; fixed ones keep a developer's real keys out of local calls.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
BUCKET = "AWS::S3::Bucket"
NAME_PROPERTY = {TABLE: "TableName", QUEUE: "QueueName", BUCKET: "BucketName"}

TABLE_PROPERTIES = ("TableName", "KeySchema", "AttributeDefinitions", "BillingMode", "ProvisionedThroughput",
                    "GlobalSecondaryIndexes", "LocalSecondaryIndexes")
# CloudFormation property -> SQS attribute (same names; RedrivePolicy is handled apart).
QUEUE_ATTRIBUTES = ("FifoQueue", "ContentBasedDeduplication", "VisibilityTimeout", "MessageRetentionPeriod",
                    "DelaySeconds", "MaximumMessageSize", "ReceiveMessageWaitTimeSeconds",
                    "DeduplicationScope", "FifoThroughputLimit")

_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class TemplateError(ValueError):
    """The template uses something local mode cannot resolve or create."""


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short-form intrinsics as their long form.

    ``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``,
    ``!Condition C`` -> ``{"Condition": "C"}``, any other ``!Name v`` -> ``{"Fn::Name": v}``
    (``!Sub``, ``!Join``, ``!If``, ...), whatever the node kind (scalar, list or map).
    """


def _construct_node(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.MappingNode)  # the third and last kind of YAML node
    return loader.construct_mapping(node, deep=True)


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value = _construct_node(loader, node)
    if tag_suffix == "Ref" or tag_suffix == "Condition":
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(template_path: Path) -> dict[str, Any]:
    """Parse a CloudFormation YAML template, short-form intrinsics included."""
    with open(template_path, encoding="utf-8") as handle:
        template = yaml.load(handle, Loader=CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError(f"{template_path}: not a CloudFormation template (no Resources map)")
    return template


@dataclass(frozen=True)
class PlannedResource:
    """One resource to create: its physical name and ARN, and the request that creates it."""

    logical_id: str
    resource_type: str
    name: str
    arn: str
    request: dict[str, Any] = field(default_factory=dict)
    time_to_live: dict[str, Any] | None = None  # tables: the TimeToLiveSpecification


@dataclass(frozen=True)
class LocalResource:
    """A resource as it exists in moto after :func:`create_resources`."""

    logical_id: str
    resource_type: str
    name: str
    arn: str
    url: str | None  # queues only
    created: bool  # False when it already existed and was left alone


class _Resolver:
    """Resolves intrinsics against one stack's pseudo parameters and supported resources."""

    def __init__(self, template: Mapping[str, Any], stack_name: str, region: str, endpoint_url: str) -> None:
        self.resources: Mapping[str, Any] = template["Resources"]
        self.parameters: Mapping[str, Any] = template.get("Parameters") or {}
        self.endpoint_url = endpoint_url.rstrip("/")
        self.region = region
        self.pseudo = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self._names: dict[str, str] = {}
        self._naming: set[str] = set()

    def resource_type(self, logical_id: str) -> str:
        if logical_id not in self.resources:
            raise TemplateError(f"reference to unknown resource {logical_id!r}")
        return str(self.resources[logical_id].get("Type", ""))

    def properties(self, logical_id: str) -> Mapping[str, Any]:
        return self.resources[logical_id].get("Properties") or {}

    def name(self, logical_id: str) -> str:
        """Physical name, resolved once; detects names that depend on themselves."""
        if logical_id in self._names:
            return self._names[logical_id]
        if logical_id in self._naming:
            raise TemplateError(f"{logical_id}: its name depends on itself")
        self._naming.add(logical_id)
        resource_type = self.resource_type(logical_id)
        explicit = self.properties(logical_id).get(NAME_PROPERTY[resource_type])
        if explicit is not None:
            name = str(self.resolve(explicit, f"{logical_id}.{NAME_PROPERTY[resource_type]}"))
        else:
            name = f"{self.pseudo['AWS::StackName']}-{logical_id}"
            if resource_type == QUEUE and _is_true(self.properties(logical_id).get("FifoQueue")):
                name += ".fifo"
        self._naming.discard(logical_id)
        self._names[logical_id] = name
        return name

    def arn(self, logical_id: str) -> str:
        resource_type, name = self.resource_type(logical_id), self.name(logical_id)
        if resource_type == TABLE:
            return f"arn:{PARTITION}:dynamodb:{self.region}:{ACCOUNT_ID}:table/{name}"
        if resource_type == QUEUE:
            return f"arn:{PARTITION}:sqs:{self.region}:{ACCOUNT_ID}:{name}"
        return f"arn:{PARTITION}:s3:::{name}"

    def queue_url(self, logical_id: str) -> str:
        return f"{self.endpoint_url}/{ACCOUNT_ID}/{self.name(logical_id)}"  # moto's URL layout

    def ref(self, target: str, context: str) -> str:
        if target in self.pseudo:
            return self.pseudo[target]
        if target in self.parameters:
            if "Default" not in self.parameters[target]:
                raise TemplateError(f"{context}: parameter {target!r} has no Default")
            return str(self.parameters[target]["Default"])
        resource_type = self.resource_type(target)
        if resource_type == QUEUE:
            return self.queue_url(target)
        if resource_type in (TABLE, BUCKET):
            return self.name(target)
        raise TemplateError(f"{context}: !Ref {target} is a {resource_type}, which local mode does not create")

    def get_att(self, target: str, attribute: str, context: str) -> str:
        resource_type = self.resource_type(target)
        if attribute == "Arn" and resource_type in NAME_PROPERTY:
            return self.arn(target)
        if resource_type == QUEUE and attribute == "QueueName":
            return self.name(target)
        if resource_type == QUEUE and attribute == "QueueUrl":
            return self.queue_url(target)
        raise TemplateError(f"{context}: !GetAtt {target}.{attribute} is not available in local mode")

    def sub(self, argument: Any, context: str) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v, context) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):  # ${!Literal} stands for the text ${Literal}
                return "${" + expression[1:] + "}"
            if expression in variables:
                return str(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                target, _, attribute = expression.partition(".")
                return self.get_att(target, attribute, context)
            return self.ref(expression, context)

        return _SUB_VARIABLE.sub(replace, str(text))

    def resolve(self, value: Any, context: str) -> Any:
        """``value`` with every supported intrinsic replaced by its local value."""
        if isinstance(value, dict) and len(value) == 1:
            (key, argument), = value.items()
            if key == "Ref":
                return self.ref(argument, context)
            if key == "Fn::Sub":
                return self.sub(argument, context)
            if key == "Fn::GetAtt":
                target, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(target, attribute, context)
            if key.startswith("Fn::") or key == "Condition":
                raise TemplateError(f"{context}: {key} is not supported in local mode")
        if isinstance(value, dict):
            return {key: self.resolve(item, context) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item, context) for item in value]
        return value


def plan_resources(template: Mapping[str, Any], stack_name: str = "imapless", *, region: str,
                   endpoint_url: str) -> list[PlannedResource]:
    """The supported resources of ``template``, resolved, in an order that satisfies references."""
    resolver = _Resolver(template, stack_name, region, endpoint_url)
    supported = [logical_id for logical_id, resource in template["Resources"].items()
                 if resource.get("Type") in NAME_PROPERTY]
    planned = {logical_id: _plan_one(resolver, logical_id) for logical_id in supported}
    return [planned[logical_id] for logical_id in _dependency_order(template["Resources"], supported)]


def _plan_one(resolver: _Resolver, logical_id: str) -> PlannedResource:
    resource_type = resolver.resource_type(logical_id)
    properties = resolver.properties(logical_id)
    name, arn = resolver.name(logical_id), resolver.arn(logical_id)

    def used(prop: str) -> Any:
        return resolver.resolve(properties[prop], f"{logical_id}.{prop}")

    if resource_type == TABLE:
        request = {prop: used(prop) for prop in TABLE_PROPERTIES if prop in properties}
        request["TableName"] = name
        if "BillingMode" not in request:
            # CloudFormation's default is PROVISIONED, which needs a throughput.
            request["BillingMode"] = "PROVISIONED" if "ProvisionedThroughput" in request else "PAY_PER_REQUEST"
        ttl = used("TimeToLiveSpecification") if "TimeToLiveSpecification" in properties else None
        if ttl is not None:
            ttl = {"AttributeName": ttl["AttributeName"], "Enabled": _is_true(ttl.get("Enabled", True))}
        return PlannedResource(logical_id, resource_type, name, arn, request, ttl)
    if resource_type == QUEUE:
        attributes = {prop: _attribute_text(used(prop)) for prop in QUEUE_ATTRIBUTES if prop in properties}
        if "RedrivePolicy" in properties:
            policy = used("RedrivePolicy")
            attributes["RedrivePolicy"] = policy if isinstance(policy, str) else json.dumps(policy)
        return PlannedResource(logical_id, resource_type, name, arn, {"QueueName": name, "Attributes": attributes})
    return PlannedResource(logical_id, resource_type, name, arn, {"Bucket": name})


def _dependency_order(resources: Mapping[str, Any], supported: list[str]) -> list[str]:
    """Template order, except that a resource comes after the supported ones it references."""
    wanted = set(supported)
    depends = {logical_id: _references(resources[logical_id]) & wanted - {logical_id} for logical_id in supported}
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(logical_id: str) -> None:
        if logical_id in ordered:
            return
        if logical_id in visiting:
            raise TemplateError(f"circular reference involving {logical_id}")
        visiting.add(logical_id)
        for dependency in sorted(depends[logical_id], key=supported.index):
            visit(dependency)
        visiting.discard(logical_id)
        ordered.append(logical_id)

    for logical_id in supported:
        visit(logical_id)
    return ordered


def _references(value: Any) -> set[str]:
    """Logical ids named by Ref, GetAtt, Sub or DependsOn anywhere inside ``value``."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0] if isinstance(item, list) else str(item).split(".", 1)[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found.update(match.split(".", 1)[0] for match in _SUB_VARIABLE.findall(str(text)))
            elif key == "DependsOn":
                found.update([item] if isinstance(item, str) else item)
            found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def create_resources(template_path: Path, stack_name: str = "imapless", *, endpoint_url: str,
                     region: str) -> dict[str, LocalResource]:
    """Create the template's tables, queues and buckets in the moto at ``endpoint_url``.

    Returns every supported resource by logical id, whether it was created now or existed.
    """
    plan = plan_resources(load_template(template_path), stack_name, region=region, endpoint_url=endpoint_url)
    clients: dict[str, BaseClient] = {}

    def client(service: str) -> BaseClient:
        if service not in clients:
            clients[service] = boto3.client(
                service, endpoint_url=endpoint_url, region_name=region, **LOCAL_CREDENTIALS,
                config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}))
        return clients[service]

    created: dict[str, LocalResource] = {}
    for resource in plan:
        if resource.resource_type == TABLE:
            created[resource.logical_id] = _ensure_table(client("dynamodb"), resource)
        elif resource.resource_type == QUEUE:
            created[resource.logical_id] = _ensure_queue(client("sqs"), resource)
        else:
            created[resource.logical_id] = _ensure_bucket(client("s3"), resource, region)
    return created


def _ensure_table(dynamodb: BaseClient, resource: PlannedResource) -> LocalResource:
    try:
        dynamodb.describe_table(TableName=resource.name)
        existed = True
    except dynamodb.exceptions.ResourceNotFoundException:
        dynamodb.create_table(**resource.request)
        if resource.time_to_live is not None:
            dynamodb.update_time_to_live(TableName=resource.name, TimeToLiveSpecification=resource.time_to_live)
        existed = False
    return LocalResource(resource.logical_id, resource.resource_type, resource.name, resource.arn, None, not existed)


def _ensure_queue(sqs: BaseClient, resource: PlannedResource) -> LocalResource:
    try:
        url = sqs.get_queue_url(QueueName=resource.name)["QueueUrl"]
        existed = True
    except sqs.exceptions.QueueDoesNotExist:
        url = sqs.create_queue(**resource.request)["QueueUrl"]
        existed = False
    return LocalResource(resource.logical_id, resource.resource_type, resource.name, resource.arn, url, not existed)


def _ensure_bucket(s3: BaseClient, resource: PlannedResource, region: str) -> LocalResource:
    try:
        s3.head_bucket(Bucket=resource.name)
        existed = True
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        request = dict(resource.request)
        if region != "us-east-1":  # S3 rejects an explicit us-east-1 location constraint
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**request)
        existed = False
    return LocalResource(resource.logical_id, resource.resource_type, resource.name, resource.arn, None, not existed)


def _is_true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _attribute_text(value: Any) -> str:
    # SQS attributes are strings; YAML gives booleans and integers.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
