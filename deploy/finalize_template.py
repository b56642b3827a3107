"""The last step of ``make package``: what `chalice package --merge-template` cannot express.

Why a post-processing step at all: the merge template is static YAML deep-merged into
Chalice's output, so it cannot say "for every function" or "for every queue", it replaces
lists instead of extending them, and it breaks when an intrinsic is merged onto another.
Each step below derives its input from the packaged template (and, for IAM, from the
code), so a handler, table or queue added tomorrow is covered without editing this file::

    sam.yaml (chalice package + template.yaml)
      1 table_defaults           PITR + SSE with the stack key on every table that lacks them
      2 link_sqs_event_sources   event source Queue -> !GetAtt <queue>.Arn, ReportBatchItemFailures
      3 function_log_groups      a log group per function (retention), wired with LoggingConfig
      4 queue_list               IMAPLESS_QUEUES = every queue's short name (GET /v1/stats)
      5 container_environment    Globals.Function.Environment -> every container of the stack
      6 derived_policies         each Lambda role and each role with Metadata.ImaplessEntryPoint
                                 gets exactly what its code uses (deploy/aws_actions.py)
      7 dead_letter_alarms       depth > 0 on every queue some RedrivePolicy names as its DLQ;
                                 for a DLQ a function consumes: arrivals > 0 and age > 15 min
      8 consumer_alarms          Errors > 0 on every function with an SQS event source
      9 alarm_actions            every alarm notifies the alarm topic (if one is configured)
     10 resource_outputs         an output per queue URL, table name and bucket name
     11 any_method_routes        every API path also has an ANY method into the same Lambda, so
                                 a method the route lacks reaches the app (405 with Allow)
                                 instead of API Gateway's MISSING_AUTHENTICATION_TOKEN answer

Every step is a pure function of the template dict (the policy step also of the analyzer)
and is idempotent; deploy/invariants.py checks the result.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from deploy.aws_actions import AwsUsageAnalyzer
from deploy.codegraph import CodeGraph
from deploy.entrypoints import ENTRY_POINT_METADATA, entry_point_roots, lambda_roots
from deploy.policies import (
    QUEUE,
    TABLE,
    get_att,
    key_statements_for,
    policy_document,
    resources_of_type,
    statements_for,
)
from local.resources import load_template

FUNCTION = "AWS::Serverless::Function"
ALARM = "AWS::CloudWatch::Alarm"
TASK_DEFINITION = "AWS::ECS::TaskDefinition"
KEY = "DataKey"
STACK_PREFIX = "${AWS::StackName}-"
ALARM_TOPIC = {"Fn::If": ["UseGivenAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}
ROOT = Path(__file__).resolve().parents[1]
Template = dict[str, Any]


def functions(template: Template) -> list[str]:
    return resources_of_type(template, FUNCTION)


def _properties(template: Template, logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id].setdefault("Properties", {})


def _sub_text(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::Sub" in value:
        argument = value["Fn::Sub"]
        return argument if isinstance(argument, str) else argument[0]
    return value if isinstance(value, str) else None


def queue_short_names(template: Template) -> dict[str, str]:
    """Logical id -> the queue's name without the stack prefix (``events.fifo``)."""
    names = {}
    for logical_id in resources_of_type(template, QUEUE):
        name = _sub_text(_properties(template, logical_id).get("QueueName")) or ""
        names[logical_id] = name[len(STACK_PREFIX):] if name.startswith(STACK_PREFIX) else name
    return names


# -- 1 ----------------------------------------------------------------------------------


def table_defaults(template: Template) -> None:
    for logical_id in resources_of_type(template, TABLE):
        properties = _properties(template, logical_id)
        properties.setdefault("PointInTimeRecoverySpecification", {"PointInTimeRecoveryEnabled": True})
        properties.setdefault("SSESpecification", {"SSEEnabled": True, "SSEType": "KMS",
                                                   "KMSMasterKeyId": {"Ref": KEY}})


# -- 2 ----------------------------------------------------------------------------------


def sqs_event_sources(template: Template, function: str) -> list[dict[str, Any]]:
    events = _properties(template, function).get("Events") or {}
    return [event.setdefault("Properties", {}) for event in events.values() if event.get("Type") == "SQS"]


def event_source_queue(template: Template, source: dict[str, Any]) -> str:
    """The logical id of the queue an event source reads (after :func:`link_sqs_event_sources`)."""
    queue = source.get("Queue")
    if isinstance(queue, dict) and "Fn::GetAtt" in queue:
        return queue["Fn::GetAtt"][0]
    arn = _sub_text(queue) or ""
    name = arn.split("${AWS::AccountId}:", 1)[-1]  # Chalice: arn:${AWS::Partition}:sqs:...:<name>
    for logical_id, short in queue_short_names(template).items():
        if name in (f"{STACK_PREFIX}{short}", _sub_text(_properties(template, logical_id).get("QueueName"))):
            return logical_id
    raise ValueError(f"event source queue {arn!r} is not a queue of the template (was chalice package run "
                     "with IMAPLESS_RESOURCE_PREFIX='${AWS::StackName}-'?)")


def link_sqs_event_sources(template: Template) -> None:
    for function in functions(template):
        linked = set()
        for source in sqs_event_sources(template, function):
            queue = event_source_queue(template, source)
            source["Queue"] = get_att(queue)
            linked.add(queue)
            # Without it Lambda ignores a handler's batchItemFailures and retries whole batches.
            source["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
        # A DependsOn on the queue (how the merge template orders a queue named by name) is
        # now implied by the GetAtt; cfn-lint flags the duplicate.
        resource = template["Resources"][function]
        depends = resource.get("DependsOn")
        if depends is not None:
            remaining = [name for name in ([depends] if isinstance(depends, str) else depends) if name not in linked]
            if remaining:
                resource["DependsOn"] = remaining
            else:
                del resource["DependsOn"]


# -- 3 ----------------------------------------------------------------------------------


def log_group_of(function: str) -> str:
    return f"{function}LogGroup"


def function_log_groups(template: Template) -> None:
    for function in functions(template):
        template["Resources"][log_group_of(function)] = {"Type": "AWS::Logs::LogGroup", "Properties": {
            # Named by stack and logical id, not by function name: the role's policy names
            # this group, and the function name would make role -> group -> function -> role.
            "LogGroupName": {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{function}"},
            "RetentionInDays": {"Ref": "LogRetentionDays"}}}
        _properties(template, function)["LoggingConfig"] = {"LogGroup": {"Ref": log_group_of(function)},
                                                            "LogFormat": "Text"}


# -- 4, 5 -------------------------------------------------------------------------------


def shared_environment(template: Template) -> dict[str, Any]:
    return (template.setdefault("Globals", {}).setdefault("Function", {})
            .setdefault("Environment", {}).setdefault("Variables", {}))


def queue_list(template: Template) -> None:
    shared_environment(template)["IMAPLESS_QUEUES"] = ",".join(sorted(queue_short_names(template).values()))


def container_environment(template: Template) -> None:
    variables = shared_environment(template)
    for task in resources_of_type(template, TASK_DEFINITION):
        for container in _properties(template, task).get("ContainerDefinitions", []):
            environment = container.setdefault("Environment", [])
            present = {entry["Name"] for entry in environment}
            environment.extend({"Name": name, "Value": value} for name, value in sorted(variables.items())
                               if name not in present)


# -- 6 ----------------------------------------------------------------------------------


def _role_of(template: Template, function: str) -> str:
    role = _properties(template, function).get("Role")
    if not (isinstance(role, dict) and "Fn::GetAtt" in role):
        raise ValueError(f"{function}: its Role is not a role of this template")
    return role["Fn::GetAtt"][0]


def function_statements(template: Template, function: str, analyzer: AwsUsageAnalyzer) -> list[dict[str, Any]]:
    """Everything one Lambda function needs: its code's grants, its event sources, logs, tracing."""
    properties = _properties(template, function)
    usage = analyzer.usage(lambda_roots(analyzer.graph, properties["Handler"]))
    received = sorted({event_source_queue(template, source) for source in sqs_event_sources(template, function)})
    statements = statements_for(template, usage.grants)
    if received:
        statements.append({"Sid": "ConsumeEventSourceQueues", "Effect": "Allow",
                           "Action": ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
                           "Resource": [get_att(queue) for queue in received]})
    statements += key_statements_for(template, usage.grants, received)
    statements.append({"Sid": "WriteOwnLogs", "Effect": "Allow",
                       "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                       "Resource": [get_att(log_group_of(function))]})
    if properties.get("Tracing") == "Active":
        statements.append({"Sid": "SendTraces", "Effect": "Allow",  # X-Ray has no resource-level permissions
                           "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "Resource": "*"})
    return statements


def entry_point_statements(template: Template, entry_point: str, analyzer: AwsUsageAnalyzer) -> list[dict[str, Any]]:
    usage = analyzer.usage(entry_point_roots(analyzer.graph, entry_point))
    return statements_for(template, usage.grants) + key_statements_for(template, usage.grants)


def derived_policies(template: Template, analyzer: AwsUsageAnalyzer) -> None:
    for function in functions(template):
        role = _role_of(template, function)
        _properties(template, role)["Policies"] = [{
            "PolicyName": "derived-from-code",
            "PolicyDocument": policy_document(function_statements(template, function, analyzer))}]
    for logical_id, resource in template["Resources"].items():
        entry_point = (resource.get("Metadata") or {}).get(ENTRY_POINT_METADATA)
        if entry_point and resource.get("Type") == "AWS::IAM::Role":
            _properties(template, logical_id)["Policies"] = [{
                "PolicyName": "derived-from-code",
                "PolicyDocument": policy_document(entry_point_statements(template, entry_point, analyzer))}]


# -- 7, 8, 9 ----------------------------------------------------------------------------


def dead_letter_queues(template: Template) -> list[str]:
    found = set()
    for logical_id in resources_of_type(template, QUEUE):
        target = (_properties(template, logical_id).get("RedrivePolicy") or {}).get("deadLetterTargetArn")
        if isinstance(target, dict) and "Fn::GetAtt" in target:
            found.add(target["Fn::GetAtt"][0])
    return sorted(found)


CONSUMED_DLQ_MAX_AGE_SECONDS = 900


def consumed_queues(template: Template) -> set[str]:
    """The queues some function of the template reads through an SQS event source."""
    return {event_source_queue(template, source)
            for function in functions(template) for source in sqs_event_sources(template, function)}


def _queue_alarm(queue: str, description: str, metric: str, statistic: str, threshold: int) -> dict[str, Any]:
    return {"Type": ALARM, "Properties": {
        "AlarmDescription": description, "Namespace": "AWS/SQS", "MetricName": metric,
        "Dimensions": [{"Name": "QueueName", "Value": get_att(queue, "QueueName")}],
        "Statistic": statistic, "Period": 300, "EvaluationPeriods": 1, "Threshold": threshold,
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}}


def dead_letter_alarms(template: Template) -> None:
    consumed = consumed_queues(template)
    for queue in dead_letter_queues(template):
        if queue not in consumed:
            template["Resources"][f"{queue}DepthAlarm"] = _queue_alarm(
                queue, f"Messages are waiting in the dead-letter queue {queue}: inspect them (docs/deploy.md, "
                       "'Dead letters') and redrive", "ApproximateNumberOfMessagesVisible", "Maximum", 0)
            continue
        # A consumer empties its DLQ within seconds, so the depth is 0 at nearly every sample:
        # alarm on what arrives (every receive of it) and on what the consumer leaves behind.
        template["Resources"][f"{queue}ArrivalsAlarm"] = _queue_alarm(
            queue, f"Messages reached the dead-letter queue {queue}; its consumer records them (docs/deploy.md, "
                   "'Dead letters')", "NumberOfMessagesReceived", "Sum", 0)
        template["Resources"][f"{queue}AgeAlarm"] = _queue_alarm(
            queue, f"The consumer of the dead-letter queue {queue} has left a message there for over "
                   f"{CONSUMED_DLQ_MAX_AGE_SECONDS // 60} minutes (docs/deploy.md, 'Dead letters')",
            "ApproximateAgeOfOldestMessage", "Maximum", CONSUMED_DLQ_MAX_AGE_SECONDS)


def consumer_alarms(template: Template) -> None:
    for function in functions(template):
        if sqs_event_sources(template, function):
            template["Resources"][f"{function}ErrorsAlarm"] = {"Type": ALARM, "Properties": {
                "AlarmDescription": f"The SQS consumer {function} failed whole invocations (crash, timeout, "
                                    "out of memory); its records are retried and may end in the DLQ",
                "Namespace": "AWS/Lambda", "MetricName": "Errors",
                "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": function}}],
                "Statistic": "Sum", "Period": 300, "EvaluationPeriods": 1, "Threshold": 0,
                "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}}


def alarm_actions(template: Template) -> None:
    actions = {"Fn::If": ["HasAlarmActions", [ALARM_TOPIC], {"Ref": "AWS::NoValue"}]}
    for alarm in resources_of_type(template, ALARM):
        properties = _properties(template, alarm)
        properties.setdefault("AlarmActions", actions)
        properties.setdefault("OKActions", actions)


# -- 10 ---------------------------------------------------------------------------------


def resource_outputs(template: Template) -> None:
    outputs = template.setdefault("Outputs", {})
    for queue in resources_of_type(template, QUEUE):
        outputs.setdefault(f"{queue}Url", {"Value": {"Ref": queue}})
    for table in resources_of_type(template, TABLE):
        outputs.setdefault(f"{table}Name", {"Value": {"Ref": table}})
    for bucket in resources_of_type(template, "AWS::S3::Bucket"):
        outputs.setdefault(f"{bucket}Name", {"Value": {"Ref": bucket}})


# -- 11 ---------------------------------------------------------------------------------

ANY_METHOD = "x-amazon-apigateway-any-method"
INTEGRATION = "x-amazon-apigateway-integration"


def api_paths(template: Template) -> dict[str, dict[str, Any]]:
    """The path items of every REST API defined by an OpenAPI body (Chalice's ``RestAPI``)."""
    paths: dict[str, dict[str, Any]] = {}
    for api in resources_of_type(template, "AWS::Serverless::Api"):
        paths.update((_properties(template, api).get("DefinitionBody") or {}).get("paths") or {})
    return paths


def any_method_routes(template: Template) -> None:
    # API Gateway answers a method a resource does not define as it answers an unknown path
    # (MISSING_AUTHENTICATION_TOKEN, our 404). With ANY beside the explicit methods (which
    # win when they match), the rest reach the app, whose router answers 405 with Allow.
    for path, item in api_paths(template).items():
        integrations = [operation[INTEGRATION] for method, operation in item.items()
                        if method != ANY_METHOD and isinstance(operation, dict) and INTEGRATION in operation]
        if not integrations or ANY_METHOD in item:
            continue
        if any(integration != integrations[0] for integration in integrations[1:]):
            raise ValueError(f"API path {path}: its methods go to different integrations; which should ANY use?")
        item[ANY_METHOD] = {"produces": ["application/json"],
                            "responses": {"405": {"description": "the route has no such method"}},
                            INTEGRATION: copy.deepcopy(integrations[0])}


STEPS: tuple[Callable[[Template], None], ...] = (
    table_defaults, link_sqs_event_sources, function_log_groups, queue_list, container_environment,
    any_method_routes)
LATE_STEPS: tuple[Callable[[Template], None], ...] = (
    dead_letter_alarms, consumer_alarms, alarm_actions, resource_outputs)


def finalize(template: Template, analyzer: AwsUsageAnalyzer) -> Template:
    for step in STEPS:
        step(template)
    derived_policies(template, analyzer)
    for step in LATE_STEPS:
        step(template)
    return template


class _PlainDumper(yaml.SafeDumper):
    """Writes a value used twice in full: CloudFormation does not resolve YAML anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Finalize the template `chalice package` wrote (in place).")
    parser.add_argument("template", type=Path, help="dist/sam.yaml")
    arguments = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # importing app.py builds pynamodb models
    sys.path.insert(0, str(ROOT))
    template = finalize(load_template(arguments.template), AwsUsageAnalyzer(CodeGraph(ROOT)))
    arguments.template.write_text(yaml.dump(template, Dumper=_PlainDumper, sort_keys=False, width=120),
                                  encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
