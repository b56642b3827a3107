"""The finalize steps on minimal templates: each derives its work from what the template holds."""

from __future__ import annotations

import json

import pytest

from deploy import finalize_template as finalize
from deploy import invariants


def queue(name: str, **properties: object) -> dict:
    return {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": f"${{AWS::StackName}}-{name}"},
                                                      **properties}}


def consumer(queue_name: str) -> dict:
    return {"Type": "AWS::Serverless::Function", "DependsOn": "Work", "Properties": {
        "Handler": "app.consume", "Timeout": 10, "Role": {"Fn::GetAtt": ["ConsumeRole", "Arn"]},
        "Events": {"ConsumeSqsEventSource": {"Type": "SQS", "Properties": {
            "Queue": {"Fn::Sub": f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:"
                                 f"${{AWS::StackName}}-{queue_name}"}}}}}}


def test_event_sources_point_at_the_queue_resource_and_report_batch_item_failures():
    # Given a consumer whose event source names its queue by name, as chalice package writes it
    template = {"Resources": {"Work": queue("work.fifo"), "Consume": consumer("work.fifo")}}
    # When the sources are linked
    finalize.link_sqs_event_sources(template)
    # Then the source references the queue (creation order implied) and reports partial failures
    source = template["Resources"]["Consume"]["Properties"]["Events"]["ConsumeSqsEventSource"]["Properties"]
    assert source["Queue"] == {"Fn::GetAtt": ["Work", "Arn"]}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "DependsOn" not in template["Resources"]["Consume"]


def test_an_event_source_on_a_queue_the_template_lacks_is_an_error():
    template = {"Resources": {"Work": queue("work"), "Consume": consumer("other")}}
    with pytest.raises(ValueError, match="not a queue of the template"):
        finalize.link_sqs_event_sources(template)


def test_tables_get_pitr_and_sse_unless_they_say_otherwise():
    template = {"Resources": {"Plain": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
                              "Own": {"Type": "AWS::DynamoDB::Table", "Properties": {
                                  "SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": "k"}}}}}
    finalize.table_defaults(template)
    plain, own = (template["Resources"][name]["Properties"] for name in ("Plain", "Own"))
    assert plain["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert plain["SSESpecification"]["KMSMasterKeyId"] == {"Ref": "DataKey"}
    assert own["SSESpecification"]["KMSMasterKeyId"] == "k"


def test_every_dead_letter_queue_and_consumer_gets_an_alarm_routed_to_the_alarm_topic():
    template = {"Resources": {
        "Dead": queue("dead", MessageRetentionPeriod=1209600),
        "Work": queue("work", RedrivePolicy={"deadLetterTargetArn": {"Fn::GetAtt": ["Dead", "Arn"]},
                                             "maxReceiveCount": 5}),
        "Consume": consumer("work")}}
    finalize.link_sqs_event_sources(template)
    finalize.dead_letter_alarms(template)
    finalize.consumer_alarms(template)
    finalize.alarm_actions(template)
    alarms = {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == {"DeadDepthAlarm", "ConsumeErrorsAlarm"}
    assert alarms["DeadDepthAlarm"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["Dead",
                                                                                                    "QueueName"]}}]
    assert all(alarm["AlarmActions"]["Fn::If"][0] == "HasAlarmActions" for alarm in alarms.values())


def test_a_dead_letter_queue_with_a_consumer_alarms_on_arrivals_and_on_what_it_leaves_behind():
    # Given a dead-letter queue that a function consumes (its depth is 0 at nearly every sample)
    template = {"Resources": {
        "Dead": queue("dead", MessageRetentionPeriod=1209600),
        "Work": queue("work", RedrivePolicy={"deadLetterTargetArn": {"Fn::GetAtt": ["Dead", "Arn"]},
                                             "maxReceiveCount": 5}),
        "Consume": consumer("dead")}}
    finalize.link_sqs_event_sources(template)
    # When the alarms are derived
    finalize.dead_letter_alarms(template)
    # Then it has no depth alarm but one on messages received and one on the oldest message's age
    alarms = {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert {name: (a["MetricName"], a["Statistic"], a["Threshold"]) for name, a in alarms.items()} == {
        "DeadArrivalsAlarm": ("NumberOfMessagesReceived", "Sum", 0),
        "DeadAgeAlarm": ("ApproximateAgeOfOldestMessage", "Maximum", 900)}
    assert all(a["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["Dead", "QueueName"]}}]
               for a in alarms.values())


def test_containers_get_the_functions_shared_environment_and_the_queue_list():
    template = {"Globals": {"Function": {"Environment": {"Variables": {"A": "1"}}}}, "Resources": {
        "Work": queue("work"), "Dead": queue("work-dlq"),
        "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"ContainerDefinitions": [
            {"Name": "c", "Environment": [{"Name": "A", "Value": "own"}]}]}}}}
    finalize.queue_list(template)
    finalize.container_environment(template)
    environment = template["Resources"]["Task"]["Properties"]["ContainerDefinitions"][0]["Environment"]
    assert environment == [{"Name": "A", "Value": "own"}, {"Name": "IMAPLESS_QUEUES", "Value": "work,work-dlq"}]


def rest_api(paths: dict, **properties: object) -> dict:
    return {"Type": "AWS::Serverless::Api", "Properties": {"DefinitionBody": {"paths": paths}, **properties}}


def operation(function: str = "APIHandler") -> dict:
    return {"responses": {"200": {"description": "ok"}}, "x-amazon-apigateway-integration": {
        "type": "aws_proxy", "httpMethod": "POST",
        "uri": {"Fn::Sub": f"arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/"
                           f"functions/${{{function}.Arn}}/invocations"}}}


ROUTE_NOT_FOUND = {"StatusCode": 404, "ResponseTemplates": {
    "application/json": '{"error": "no route matches this path", "code": "RouteNotFound", "statusCode": 404}'}}
NOT_FOUND = {"MISSING_AUTHENTICATION_TOKEN": ROUTE_NOT_FOUND, "INCOMPLETE_SIGNATURE": ROUTE_NOT_FOUND}


def test_every_api_path_gets_an_any_method_into_the_same_lambda():
    # Given the API Chalice writes: explicit methods only
    template = {"Resources": {"RestAPI": rest_api({"/v1/tokens": {"get": operation(), "post": operation()},
                                                   "/health": {"get": operation()}},
                                                  GatewayResponses=NOT_FOUND)}}
    assert any("no ANY method" in problem for problem in invariants.violations(template))
    # When the template is finalized
    finalize.any_method_routes(template)
    # Then each path also routes any other method to the same integration (the app answers 405 + Allow)
    paths = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    for item in paths.values():
        assert item[finalize.ANY_METHOD][finalize.INTEGRATION] == operation()[finalize.INTEGRATION]
    assert set(paths["/v1/tokens"]) == {"get", "post", finalize.ANY_METHOD}
    assert invariants.violations(template) == []


def test_a_path_whose_methods_go_to_different_lambdas_is_an_error():
    template = {"Resources": {"RestAPI": rest_api({"/x": {"get": operation(), "post": operation("Other")}})}}
    with pytest.raises(ValueError, match="different integrations"):
        finalize.any_method_routes(template)


@pytest.mark.parametrize("response_type", ["MISSING_AUTHENTICATION_TOKEN", "INCOMPLETE_SIGNATURE"])
@pytest.mark.parametrize("declared", [
    None,
    {"StatusCode": 403},
    {"StatusCode": 404, "ResponseTemplates": {"application/json": '{"error": "$context.error.messageString"}'}},
])
def test_unknown_paths_must_be_a_constant_404(response_type, declared):
    responses = {**NOT_FOUND, response_type: declared}
    if declared is None:
        del responses[response_type]
    template = {"Resources": {"RestAPI": rest_api({}, GatewayResponses=responses)}}
    assert any(response_type in problem for problem in invariants.violations(template))


def test_the_template_declares_the_404_gateway_response_for_unknown_paths():
    from pathlib import Path

    from local.resources import load_template

    template = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
    responses = template["Resources"]["RestAPI"]["Properties"]["GatewayResponses"]
    for response_type in invariants.ROUTE_NOT_FOUND_RESPONSES:  # without and with an Authorization header
        declared = responses[response_type]
        assert int(declared["StatusCode"]) == 404
        assert json.loads(declared["ResponseTemplates"]["application/json"]) == {
            "error": "no route matches this path", "code": "RouteNotFound", "statusCode": 404}
