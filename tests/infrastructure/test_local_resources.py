"""The tests' and the local runner's moto resources are the template's resources, definition for definition."""

from __future__ import annotations

import json

import boto3

from deploy.aws_actions import AwsUsageAnalyzer
from deploy.codegraph import CodeGraph
from deploy.policies import table_short_names
from local.resources import load_template, plan_resources
from tests.infrastructure.conftest import ROOT
from tests.support.aws import MOTO_ENDPOINT, REGION


def client(service: str):
    return boto3.client(service, region_name=REGION, endpoint_url=MOTO_ENDPOINT)


def planned(resource_type: str) -> list:
    resources = plan_resources(load_template(ROOT / "template.yaml"), region=REGION, endpoint_url=MOTO_ENDPOINT)
    found = [resource for resource in resources if resource.resource_type == resource_type]
    assert found
    return found


def test_every_template_table_exists_in_moto_with_the_same_keys_indexes_and_ttl(aws_resources):
    dynamodb = client("dynamodb")
    for table in planned("AWS::DynamoDB::Table"):
        described = dynamodb.describe_table(TableName=table.name)["Table"]
        assert described["KeySchema"] == table.request["KeySchema"], table.logical_id
        assert sorted(described["AttributeDefinitions"], key=str) == sorted(table.request["AttributeDefinitions"],
                                                                            key=str)
        indexes = {index["IndexName"]: (index["KeySchema"], index["Projection"]["ProjectionType"])
                   for index in described.get("GlobalSecondaryIndexes", [])}
        assert indexes == {index["IndexName"]: (index["KeySchema"], index["Projection"]["ProjectionType"])
                           for index in table.request.get("GlobalSecondaryIndexes", [])}, table.logical_id
        if table.time_to_live:
            ttl = dynamodb.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
            assert ttl["AttributeName"] == table.time_to_live["AttributeName"], table.logical_id


def test_every_template_queue_exists_in_moto_with_the_same_attributes(aws_resources):
    sqs = client("sqs")
    for queue in planned("AWS::SQS::Queue"):
        url = sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for name, value in queue.request["Attributes"].items():
            if name == "RedrivePolicy":
                assert json.loads(attributes[name]) == json.loads(value), queue.logical_id
            else:
                assert attributes[name].lower() == str(value).lower(), (queue.logical_id, name)


def test_every_table_the_code_uses_is_a_template_table():
    # The analyzer maps each pynamodb model (and Powertools table) to its short name; the
    # template must define each one, or the code would run against a table no stack creates.
    analyzer = AwsUsageAnalyzer(CodeGraph(ROOT))
    used = {model.table for model in analyzer.models.values()}
    assert used <= set(table_short_names(load_template(ROOT / "template.yaml")))
