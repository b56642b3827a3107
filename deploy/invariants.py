"""The rules a packaged stack must satisfy; ``make package`` refuses a template that breaks one.

Each check returns human-readable violations (empty: fine), so the CLI, ``make package``
and tests/infrastructure report every problem at once instead of the first one.

    every SQS event source       ReportBatchItemFailures; its queue's visibility >= 6x the
                                 function timeout (AWS's advice for Lambda event sources)
    every table                  point-in-time recovery, SSE with a KMS key
    every dead-letter queue      14-day retention; an alarm on it (its depth; for a DLQ a function
                                 consumes, its arrivals and the age of what is left)
    every queue                  SSE with a KMS key
    every key                    rotation enabled
    every bucket                 public access blocked, default encryption, a lifecycle expiry
    every role's policy          no wildcard action, no "*" resource except the services
                                 that have no resource-level permissions
    every container              runs as a non-root numeric user
    every API path               an ANY method (unknown methods reach the app: 405, not 404)
    the REST API                 unknown paths (MISSING_AUTHENTICATION_TOKEN, INCOMPLETE_SIGNATURE):
                                 404 with a constant body
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deploy.finalize_template import (
    ANY_METHOD,
    api_paths,
    dead_letter_queues,
    event_source_queue,
    functions,
    resources_of_type,
    sqs_event_sources,
)
from deploy.policies import QUEUE, TABLE
from local.resources import load_template

# What API Gateway answers for a path no route matches: without, and with an Authorization
# header (whose message would repeat the header, the caller's token).
ROUTE_NOT_FOUND_RESPONSES = ("MISSING_AUTHENTICATION_TOKEN", "INCOMPLETE_SIGNATURE")
VISIBILITY_FACTOR = 6
DLQ_RETENTION_SECONDS = 14 * 86400
LAMBDA_DEFAULT_TIMEOUT_SECONDS = 3
# Actions that only accept Resource "*" (no resource-level permissions in IAM).
RESOURCELESS_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ecr:GetAuthorizationToken"}
Template = dict[str, Any]


def _properties(template: Template, logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id].get("Properties") or {}


def _number(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else default


def event_sources(template: Template) -> Iterator[str]:
    for function in functions(template):
        timeout = _number(_properties(template, function).get("Timeout"), LAMBDA_DEFAULT_TIMEOUT_SECONDS)
        for source in sqs_event_sources(template, function):
            queue = event_source_queue(template, source)
            if source.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
                yield f"{function}: SQS event source on {queue} lacks ReportBatchItemFailures"
            visibility = _number(_properties(template, queue).get("VisibilityTimeout"), 30)
            if visibility < VISIBILITY_FACTOR * timeout:
                yield (f"{queue}: VisibilityTimeout {visibility} s < {VISIBILITY_FACTOR} x {function}'s "
                       f"timeout ({timeout} s)")


def tables(template: Template) -> Iterator[str]:
    for table in resources_of_type(template, TABLE):
        properties = _properties(template, table)
        if (properties.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled") is not True:
            yield f"{table}: point-in-time recovery is off"
        sse = properties.get("SSESpecification") or {}
        if sse.get("SSEEnabled") is not True or sse.get("SSEType") != "KMS":
            yield f"{table}: no SSE with a KMS key"
        if properties.get("BillingMode") != "PAY_PER_REQUEST":
            yield f"{table}: not on-demand (PAY_PER_REQUEST)"


def queues(template: Template) -> Iterator[str]:
    alarmed = {_alarm_queue(template, alarm) for alarm in resources_of_type(template, "AWS::CloudWatch::Alarm")}
    for queue in resources_of_type(template, QUEUE):
        if not _properties(template, queue).get("KmsMasterKeyId"):
            yield f"{queue}: not encrypted with a KMS key"
    for queue in dead_letter_queues(template):
        retention = _number(_properties(template, queue).get("MessageRetentionPeriod"), 345600)
        if retention != DLQ_RETENTION_SECONDS:
            yield f"{queue}: dead-letter retention {retention} s, not 14 days"
        if queue not in alarmed:
            yield f"{queue}: no alarm on it"


def _alarm_queue(template: Template, alarm: str) -> str | None:
    for dimension in _properties(template, alarm).get("Dimensions") or []:
        value = dimension.get("Value")
        if dimension.get("Name") == "QueueName" and isinstance(value, dict) and "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def keys_and_buckets(template: Template) -> Iterator[str]:
    for key in resources_of_type(template, "AWS::KMS::Key"):
        if _properties(template, key).get("EnableKeyRotation") is not True:
            yield f"{key}: key rotation is off"
    for bucket in resources_of_type(template, "AWS::S3::Bucket"):
        properties = _properties(template, bucket)
        block = properties.get("PublicAccessBlockConfiguration") or {}
        if not all(block.get(flag) is True for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                                         "RestrictPublicBuckets")):
            yield f"{bucket}: public access is not fully blocked"
        if not properties.get("BucketEncryption"):
            yield f"{bucket}: no default encryption"
        rules = (properties.get("LifecycleConfiguration") or {}).get("Rules") or []
        if not any(rule.get("Status") == "Enabled" and rule.get("ExpirationInDays") for rule in rules):
            yield f"{bucket}: no lifecycle expiry"


def role_statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    for role in resources_of_type(template, "AWS::IAM::Role"):
        for policy in _properties(template, role).get("Policies") or []:
            for statement in policy["PolicyDocument"]["Statement"]:
                yield role, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policies(template: Template) -> Iterator[str]:
    for role, statement in role_statements(template):
        actions = _as_list(statement.get("Action"))
        for action in actions:
            if "*" in action:
                yield f"{role}: wildcard action {action}"
        if "*" in _as_list(statement.get("Resource")) and not set(actions) <= RESOURCELESS_ACTIONS:
            yield f"{role}: Resource '*' for {sorted(set(actions) - RESOURCELESS_ACTIONS)}"


def containers(template: Template) -> Iterator[str]:
    for task in resources_of_type(template, "AWS::ECS::TaskDefinition"):
        for container in _properties(template, task).get("ContainerDefinitions") or []:
            user = str(container.get("User", ""))
            uid = user.split(":", 1)[0]
            if not uid.isdigit() or int(uid) == 0:
                yield f"{task}/{container.get('Name')}: must run as a non-root numeric user, not {user!r}"


def api_routes(template: Template) -> Iterator[str]:
    for path, item in api_paths(template).items():
        if ANY_METHOD not in item:
            yield f"API path {path}: no ANY method (a method the route lacks would be a 404, not a 405)"
    for api in resources_of_type(template, "AWS::Serverless::Api"):
        responses = _properties(template, api).get("GatewayResponses") or {}
        for response_type in ROUTE_NOT_FOUND_RESPONSES:
            response = responses.get(response_type)
            if not response or int(response.get("StatusCode", 0)) != 404:
                yield f"{api}: unknown paths must answer 404 (GatewayResponses.{response_type})"
            elif "$" in str(response.get("ResponseTemplates")):
                # Any mapping variable ($context.error.message, $input.params()) repeats the request.
                yield f"{api}: the {response_type} response must be a constant body"


CHECKS: tuple[Callable[[Template], Iterator[str]], ...] = (
    event_sources, tables, queues, keys_and_buckets, policies, containers, api_routes)


def violations(template: Template) -> list[str]:
    return [problem for check in CHECKS for problem in check(template)]


def main(argv: list[str] | None = None) -> int:
    path = Path((argv if argv is not None else sys.argv[1:])[0])
    problems = violations(load_template(path))
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
