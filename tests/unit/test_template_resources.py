"""template.yaml -> local resources: the YAML loader's intrinsics and the pure planning step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from local.resources import CloudFormationLoader, TemplateError, load_template, plan_resources

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = "http://127.0.0.1:4566"


def parse(text: str) -> object:
    return yaml.load(text, Loader=CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass


def plan(resources: dict, stack_name: str = "stack", region: str = "eu-west-1", **template: object) -> dict:
    planned = plan_resources({"Resources": resources, **template}, stack_name, region=region, endpoint_url=ENDPOINT)
    return {resource.logical_id: resource for resource in planned}


def table(name: object) -> dict:
    return {"Type": "AWS::DynamoDB::Table", "Properties": {
        "TableName": name,
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
    }}


@pytest.mark.parametrize(("text", "expected"), [
    ("!Ref DataKey", {"Ref": "DataKey"}),
    ('!Sub "${AWS::StackName}-x"', {"Fn::Sub": "${AWS::StackName}-x"}),
    ("!Sub ['${A}-x', {A: !Ref B}]", {"Fn::Sub": ["${A}-x", {"A": {"Ref": "B"}}]}),
    ("!GetAtt Queue.Arn", {"Fn::GetAtt": ["Queue", "Arn"]}),
    ("!GetAtt [Queue, Arn]", {"Fn::GetAtt": ["Queue", "Arn"]}),
    ("!Join ['-', [a, !Ref B]]", {"Fn::Join": ["-", ["a", {"Ref": "B"}]]}),
    ("!Condition IsProd", {"Condition": "IsProd"}),
])
def test_loader_turns_short_form_intrinsics_into_long_form(text: str, expected: object) -> None:
    assert parse(text) == expected


def test_loader_stays_safe() -> None:
    with pytest.raises(yaml.constructor.ConstructorError):
        parse("!!python/object/apply:os.system ['true']")


def test_the_shipped_template_plans_tables_and_queues_with_the_dead_letter_queue_first() -> None:
    # Given the real template, When it is planned for the default stack name
    planned = plan_resources(load_template(ROOT / "template.yaml"), region="us-east-1", endpoint_url=ENDPOINT)

    # Then only tables, queues and buckets are planned (the KMS key and alias are AWS-only) ...
    by_id = {resource.logical_id: resource for resource in planned}
    assert {r.resource_type for r in planned} <= {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::S3::Bucket"}
    assert by_id["AccountsTable"].name == "imapless-accounts"
    assert by_id["TokensTable"].request["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert "SSESpecification" not in by_id["TokensTable"].request
    # ... and the events queue comes after its dead-letter queue, whose ARN it names.
    order = [resource.logical_id for resource in planned]
    assert order.index("EventsDeadLetterQueue") < order.index("EventsQueue")
    events = by_id["EventsQueue"].request["Attributes"]
    assert by_id["EventsQueue"].name == "imapless-events.fifo"
    assert events["FifoQueue"] == "true"
    assert "KmsMasterKeyId" not in events
    assert json.loads(events["RedrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:imapless-events-dlq.fifo",
        "maxReceiveCount": 50,
    }


@pytest.mark.parametrize(("name", "expected"), [
    ({"Fn::Sub": "${AWS::StackName}-accounts"}, "stack-accounts"),
    ({"Fn::Sub": "${AWS::Region}/${AWS::AccountId}/${AWS::Partition}"}, "eu-west-1/123456789012/aws"),
    ({"Fn::Sub": "keep-${!Literal}"}, "keep-${Literal}"),
    ({"Fn::Sub": ["${Prefix}-t", {"Prefix": {"Ref": "AWS::StackName"}}]}, "stack-t"),
    ({"Fn::Sub": "${Env}-t"}, "dev-t"),  # a template parameter's Default
    ({"Ref": "AWS::StackName"}, "stack"),
    ("plain", "plain"),
])
def test_table_names_resolve_pseudo_parameters(name: object, expected: str) -> None:
    planned = plan({"T": table(name)}, Parameters={"Env": {"Type": "String", "Default": "dev"}})
    assert planned["T"].name == expected
    assert planned["T"].request["TableName"] == expected
    assert planned["T"].arn == f"arn:aws:dynamodb:eu-west-1:123456789012:table/{expected}"


def test_sub_reaches_attributes_of_other_resources_and_orders_by_reference() -> None:
    # Given a queue listed before the dead-letter queue it names through ${Dlq.Arn}
    planned = plan({
        "Main": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": "main",
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::Sub": "${Dlq.Arn}"}, "maxReceiveCount": 3}}},
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "main-dlq", "DelaySeconds": 5}},
    })
    # Then the dead-letter queue is created first and its ARN is filled in
    assert list(planned) == ["Dlq", "Main"]
    assert json.loads(planned["Main"].request["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"] == (
        "arn:aws:sqs:eu-west-1:123456789012:main-dlq")
    assert planned["Dlq"].request["Attributes"] == {"DelaySeconds": "5"}


def test_unnamed_resources_get_stack_based_names_and_fifo_suffix() -> None:
    planned = plan({
        "Jobs": {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": True}},
        "Files": {"Type": "AWS::S3::Bucket"},
    })
    assert planned["Jobs"].name == "stack-Jobs.fifo"
    assert planned["Files"].request == {"Bucket": "stack-Files"}


def test_table_defaults_and_time_to_live() -> None:
    resource = table("t")
    resource["Properties"]["TimeToLiveSpecification"] = {"AttributeName": "expires", "Enabled": True}
    resource["Properties"]["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
    planned = plan({"T": resource})["T"]
    assert planned.request["BillingMode"] == "PAY_PER_REQUEST"
    assert "PointInTimeRecoverySpecification" not in planned.request
    assert planned.time_to_live == {"AttributeName": "expires", "Enabled": True}


def test_an_unresolvable_reference_in_a_used_property_names_the_resource() -> None:
    # A KMS key is not created locally, so a name built from it cannot be resolved.
    resources = {"Key": {"Type": "AWS::KMS::Key"}, "T": table({"Fn::Sub": "${Key}-t"})}
    with pytest.raises(TemplateError, match=r"T\.TableName: !Ref Key is a AWS::KMS::Key"):
        plan(resources)


def test_unsupported_resource_types_and_properties_are_ignored() -> None:
    resources = {
        "Key": {"Type": "AWS::KMS::Key", "Properties": {"Description": "x"}},
        "Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q", "KmsMasterKeyId": {"Ref": "Key"}}},
    }
    assert plan(resources)["Q"].request == {"QueueName": "q", "Attributes": {}}
