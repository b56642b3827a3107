"""IAM policy documents from analyzed AWS usage, scoped to the stack's own resources.

    Grant("dynamodb:GetItem", ("table", "accounts"))  ->  Resource: !GetAtt AccountsTable.Arn
    Grant("dynamodb:Query", ("index", "outbox", "byAccount"))  ->  !Sub "${OutboxTable.Arn}/index/byAccount"
                                                          (table and index actions in separate statements)
    Grant("sqs:SendMessage", ("sqs",))                 ->  every AWS::SQS::Queue of the template
    Grant("s3:PutObject", ("s3",))                     ->  "${Bucket.Arn}/*" (object actions) / bucket ARN
    Grant("kms:Decrypt", ("kms",))                     ->  every AWS::KMS::Key of the template

Services whose resources are encrypted with a stack key need that key too, but only
through the service: SQS (SSE-KMS queues: senders need GenerateDataKey + Decrypt,
receivers Decrypt) and DynamoDB tables with a customer managed key get a ``kms:ViaService``
condition, so the role cannot use the key directly for anything else.

Invariant: no statement has a wildcard action, and every data-plane Resource is an ARN of
a resource this template creates. A grant on a table or service the template does not
have raises :class:`PolicyError` (a new table in code without its template resource is
caught at package time, not by an AccessDenied in production).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from deploy.aws_actions import Grant

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
BUCKET = "AWS::S3::Bucket"
KEY = "AWS::KMS::Key"
SERVICE_RESOURCE_TYPES = {"sqs": QUEUE, "s3": BUCKET, "kms": KEY}
# Object-level S3 actions whose names do not say "Object".
S3_OBJECT_ACTIONS = {"s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
# What a principal needs on an SSE-KMS queue's key (AWS SQS developer guide, "Key management").
QUEUE_KEY_ACTIONS = {"sqs:SendMessage": ("kms:GenerateDataKey", "kms:Decrypt"),
                     "sqs:ReceiveMessage": ("kms:Decrypt",)}
# What DynamoDB asks KMS for on behalf of the caller of a table with a customer managed key
# (AWS's key policy for DynamoDB also lists ReEncrypt* and GenerateDataKey*: those serve
# key changes, which CloudFormation's role performs, not the application's).
TABLE_KEY_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")
POLICY_VERSION = "2012-10-17"


class PolicyError(ValueError):
    """A grant names something the template does not create."""


def get_att(logical_id: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def resources_of_type(template: Mapping[str, Any], resource_type: str) -> list[str]:
    return sorted(logical_id for logical_id, resource in template["Resources"].items()
                  if resource.get("Type") == resource_type)


def _sub_text(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::Sub" in value:
        argument = value["Fn::Sub"]
        return argument if isinstance(argument, str) else argument[0]
    return value if isinstance(value, str) else None


def table_short_names(template: Mapping[str, Any], prefix: str = "${AWS::StackName}-") -> dict[str, str]:
    """Short table name (as code names it) -> logical id, for tables named ``<prefix><short>``."""
    found = {}
    for logical_id in resources_of_type(template, TABLE):
        name = _sub_text(template["Resources"][logical_id].get("Properties", {}).get("TableName"))
        if name and name.startswith(prefix):
            found[name[len(prefix):]] = logical_id
    return found


def _key_of(template: Mapping[str, Any], logical_id: str, property_name: str) -> str | None:
    """The logical id of the stack key a resource is encrypted with (``!Ref DataKey`` / ``!GetAtt``)."""
    properties = template["Resources"][logical_id].get("Properties", {})
    value = properties.get(property_name)
    if isinstance(value, dict):
        target = value.get("Ref") or (value.get("Fn::GetAtt") or [None])[0]
        if target in template["Resources"] and template["Resources"][target].get("Type") == KEY:
            return target
    return None


def _table_key(template: Mapping[str, Any], logical_id: str) -> str | None:
    sse = template["Resources"][logical_id].get("Properties", {}).get("SSESpecification") or {}
    value = sse.get("KMSMasterKeyId")
    if isinstance(value, dict):
        target = value.get("Ref") or (value.get("Fn::GetAtt") or [None])[0]
        if template["Resources"].get(target, {}).get("Type") == KEY:
            return target
    return None


def _resource_arns(template: Mapping[str, Any], grant: Grant, tables: Mapping[str, str]) -> list[Any]:
    kind = grant.resource[0]
    if kind in ("table", "index"):
        short = grant.resource[1]
        if short not in tables:
            raise PolicyError(f"{grant.action} on table {short!r}: template.yaml has no table named "
                              f"${{AWS::StackName}}-{short}")
        if kind == "index":
            return [{"Fn::Sub": f"${{{tables[short]}.Arn}}/index/{grant.resource[2]}"}]
        return [get_att(tables[short])]
    resource_type = SERVICE_RESOURCE_TYPES.get(kind)
    logical_ids = resources_of_type(template, resource_type) if resource_type else []
    if not logical_ids:
        raise PolicyError(f"{grant.action}: the code calls {kind} but the template has no {kind} resource "
                          "to scope it to")
    if kind == "s3":
        object_level = is_object_action(grant.action)
        return [{"Fn::Sub": f"${{{logical_id}.Arn}}/*"} if object_level else get_att(logical_id)
                for logical_id in logical_ids]
    return [get_att(logical_id) for logical_id in logical_ids]


def is_object_action(action: str) -> bool:
    """S3 actions whose resource is an object (``bucket/*``) rather than the bucket."""
    return "Object" in action or action in S3_OBJECT_ACTIONS


def _statement(sid: str, actions: Iterable[str], resources: list[Any],
               condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)), "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _sid(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", " ").replace(".", " ").split())


def statements_for(template: Mapping[str, Any], grants: Iterable[Grant]) -> list[dict[str, Any]]:
    """One statement per table, per index and per service: each action only on what it was derived for."""
    tables = table_short_names(template)
    grouped: dict[tuple[str, ...], list[Grant]] = {}
    for grant in grants:
        object_level = grant.resource == ("s3",) and is_object_action(grant.action)  # bucket/* vs the bucket
        grouped.setdefault(grant.resource + (("objects",) if object_level else ()), []).append(grant)
    statements = []
    for key in sorted(grouped):
        members = grouped[key]
        resources = _resource_arns(template, members[0], tables)
        statements.append(_statement(_sid(" ".join(key)), {grant.action for grant in members}, resources))
    return statements


def key_statements_for(template: Mapping[str, Any], grants: Iterable[Grant],
                       received_queues: Iterable[str] = ()) -> list[dict[str, Any]]:
    """KMS permissions the caller needs *through* SQS and DynamoDB for encrypted resources."""
    grants = list(grants)
    tables = table_short_names(template)
    via: dict[str, set[str]] = {}  # service -> KMS actions
    keys: dict[str, set[str]] = {}  # service -> key logical ids
    sqs_actions = {grant.action for grant in grants if grant.resource == ("sqs",)}
    if received_queues:
        sqs_actions.add("sqs:ReceiveMessage")
    queue_keys = {key for queue in resources_of_type(template, QUEUE)
                  if (key := _key_of(template, queue, "KmsMasterKeyId"))}
    for action in sqs_actions:
        if action in QUEUE_KEY_ACTIONS and queue_keys:
            via.setdefault("sqs", set()).update(QUEUE_KEY_ACTIONS[action])
            keys.setdefault("sqs", set()).update(queue_keys)
    table_keys = {key for grant in grants if grant.resource[0] in ("table", "index")
                  if grant.resource[1] in tables and (key := _table_key(template, tables[grant.resource[1]]))}
    if table_keys:
        via["dynamodb"] = set(TABLE_KEY_ACTIONS)
        keys["dynamodb"] = table_keys
    return [_statement(f"StackKeyVia{_sid(service)}", via[service], [get_att(key) for key in sorted(keys[service])],
                       {"StringEquals": {"kms:ViaService": {"Fn::Sub": f"{service}.${{AWS::Region}}.amazonaws.com"}}})
            for service in sorted(via)]


def policy_document(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": POLICY_VERSION, "Statement": statements}
