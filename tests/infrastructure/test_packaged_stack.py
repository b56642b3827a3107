"""The stack `make package` produces: the rules it must keep, checked on the real output.

Everything here is derived from the packaged template and the code, so a handler, table or
queue added tomorrow is checked without editing this file.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy import finalize_template, invariants
from deploy.aws_actions import AwsUsageAnalyzer, Grant
from deploy.entrypoints import ENTRY_POINT_METADATA, entry_point_roots, lambda_roots
from deploy.finalize_template import dead_letter_queues, event_source_queue, functions, sqs_event_sources
from deploy.policies import resources_of_type, table_short_names
from tests.infrastructure.conftest import ROOT, PackagedStack

LAMBDA_ZIP_LIMIT_BYTES = 50 * 1024 * 1024  # direct upload limit of a zipped deployment package
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


def resources(stack: PackagedStack, resource_type: str) -> list[str]:
    return resources_of_type(stack.template, resource_type)


def properties(stack: PackagedStack, logical_id: str) -> dict[str, Any]:
    return stack.template["Resources"][logical_id].get("Properties") or {}


def test_package_runs_chalice_finalize_invariants_and_cfn_lint_without_errors(packaged_stack):
    # Given `make package` ran (the fixture fails on any non-zero step, cfn-lint errors included)
    # Then it wrote the template and the code bundle, and cfn-lint reported no error
    assert (packaged_stack.directory / "sam.yaml").is_file()
    assert (packaged_stack.directory / "deployment.zip").is_file()
    assert not [line for line in packaged_stack.output.splitlines() if line[:1] == "E" and line[1:5].isdigit()]


def test_the_template_uses_no_yaml_aliases_which_cloudformation_does_not_resolve(packaged_stack):
    text = (packaged_stack.directory / "sam.yaml").read_text()
    assert not re.search(r"[&*]id\d{3}", text)


def test_every_api_path_routes_any_method_to_the_app_and_unknown_paths_get_a_constant_404(packaged_stack):
    paths = finalize_template.api_paths(packaged_stack.template)
    assert "/v1/tokens/{token_id}" in paths
    assert all(finalize_template.ANY_METHOD in item for item in paths.values())
    declared = properties(packaged_stack, "RestAPI")["GatewayResponses"]
    for response_type in invariants.ROUTE_NOT_FOUND_RESPONSES:
        assert declared[response_type]["StatusCode"] == 404
        assert "$" not in declared[response_type]["ResponseTemplates"]["application/json"]


def test_every_invariant_of_the_stack_holds(packaged_stack):
    assert invariants.violations(packaged_stack.template) == []


def test_the_stack_has_the_api_consumers_and_watcher_service(packaged_stack):
    handlers = {properties(packaged_stack, f)["Handler"] for f in functions(packaged_stack.template)}
    assert "app.app" in handlers
    assert {"app.deliver_webhooks", "app.deliver_outbox", "app.record_webhook_dead_letters"} <= handlers
    assert resources(packaged_stack, "AWS::ECS::Service") == ["WatcherService"]
    assert properties(packaged_stack, "WatcherTaskDefinition")["NetworkMode"] == "awsvpc"
    assert properties(packaged_stack, "WatcherTaskDefinition")["RequiresCompatibilities"] == ["FARGATE"]


def test_every_sqs_event_source_reports_batch_item_failures_on_a_queue_of_the_stack(packaged_stack):
    template = packaged_stack.template
    sources = [(f, s) for f in functions(template) for s in sqs_event_sources(template, f)]
    assert sources, "the app has SQS consumers"
    for function, source in sources:
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"], function
        assert source["Queue"]["Fn::GetAtt"][0] in resources(packaged_stack, "AWS::SQS::Queue")


def test_queue_visibility_is_at_least_six_times_its_consumers_timeout(packaged_stack):
    for function in functions(packaged_stack.template):
        timeout = int(properties(packaged_stack, function)["Timeout"])
        for source in sqs_event_sources(packaged_stack.template, function):
            queue = event_source_queue(packaged_stack.template, source)
            assert int(properties(packaged_stack, queue)["VisibilityTimeout"]) >= 6 * timeout, (queue, function)


def test_every_table_has_point_in_time_recovery_and_sse_with_the_stack_key(packaged_stack):
    tables = resources(packaged_stack, "AWS::DynamoDB::Table")
    assert len(tables) >= 3
    for table in tables:
        table_properties = properties(packaged_stack, table)
        assert table_properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, table
        assert table_properties["SSESpecification"]["SSEType"] == "KMS", table
        assert table_properties["SSESpecification"]["KMSMasterKeyId"] == {"Ref": "DataKey"}, table


def test_every_dead_letter_queue_keeps_14_days_and_has_a_depth_alarm(packaged_stack):
    queues = dead_letter_queues(packaged_stack.template)
    assert queues
    alarmed = {dimension["Value"]["Fn::GetAtt"][0]
               for alarm in resources(packaged_stack, "AWS::CloudWatch::Alarm")
               for dimension in properties(packaged_stack, alarm).get("Dimensions") or []
               if dimension["Name"] == "QueueName"}
    for queue in queues:
        assert int(properties(packaged_stack, queue)["MessageRetentionPeriod"]) == 14 * 86400
        assert queue in alarmed


def test_watcher_task_runs_as_non_root_in_the_task_definition_and_the_image(packaged_stack):
    container, = properties(packaged_stack, "WatcherTaskDefinition")["ContainerDefinitions"]
    uid = container["User"].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    dockerfile = (ROOT / "workers" / "Dockerfile").read_text()
    user_lines = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user_lines == [container["User"]]  # the image's last (only) USER is the task's user
    assert "HEALTHCHECK" in dockerfile and "workers.health" in dockerfile


def test_watcher_container_gets_every_shared_variable_of_the_functions(packaged_stack):
    shared = packaged_stack.template["Globals"]["Function"]["Environment"]["Variables"]
    container, = properties(packaged_stack, "WatcherTaskDefinition")["ContainerDefinitions"]
    assert {entry["Name"] for entry in container["Environment"]} >= set(shared)
    assert set(shared["IMAPLESS_QUEUES"].split(",")) == {
        properties(packaged_stack, queue)["QueueName"]["Fn::Sub"].removeprefix("${AWS::StackName}-")
        for queue in resources(packaged_stack, "AWS::SQS::Queue")}


def test_deployment_package_fits_lambda_limits(packaged_stack):
    bundle = packaged_stack.directory / "deployment.zip"
    with zipfile.ZipFile(bundle) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
        names = archive.namelist()
    assert bundle.stat().st_size < LAMBDA_ZIP_LIMIT_BYTES
    assert unzipped < LAMBDA_UNZIPPED_LIMIT_BYTES
    assert "app.py" in names and "chalicelib/settings.py" in names
    # /docs serves these from the package itself (no CDN)
    assert "chalicelib/static/docs-init.js" in names
    assert "swagger_ui_bundle/vendor/swagger-ui-5.31.0/swagger-ui-bundle.js" in names
    # The console's static files travel with the code that serves them
    console = {path.name for path in (ROOT / "chalicelib" / "console" / "static").iterdir()}
    assert {name.removeprefix("chalicelib/console/static/") for name in names
            if name.startswith("chalicelib/console/static/")} == console
    assert not [name for name in names if name.startswith(("tests/", "local/", "deploy/", ".venv/"))]


# -- IAM: each role allows exactly what its code uses -----------------------------------------


def _expected_arns(template: dict[str, Any], grant: Grant) -> list[Any]:
    kind = grant.resource[0]
    tables = table_short_names(template)
    if kind == "table":
        return [{"Fn::GetAtt": [tables[grant.resource[1]], "Arn"]}]
    if kind == "index":
        return [{"Fn::Sub": f"${{{tables[grant.resource[1]]}.Arn}}/index/{grant.resource[2]}"}]
    resource_type = {"sqs": "AWS::SQS::Queue", "kms": "AWS::KMS::Key", "s3": "AWS::S3::Bucket"}[kind]
    arns = []
    for logical_id in resources_of_type(template, resource_type):
        # AbortMultipartUpload acts on the object being uploaded, though its name does not say so
        object_level = kind == "s3" and ("Object" in grant.action or grant.action == "s3:AbortMultipartUpload")
        arns.append({"Fn::Sub": f"${{{logical_id}.Arn}}/*"} if object_level else {"Fn::GetAtt": [logical_id, "Arn"]})
    return arns


def _allowed_pairs(policies: list[dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
    """(action, resource, condition) for every action x resource a role's policies allow."""
    for policy in policies:
        for statement in policy["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            condition = repr(statement.get("Condition"))
            statement_resources = statement["Resource"] if isinstance(statement["Resource"], list) else [
                statement["Resource"]]
            for action in statement["Action"]:
                for resource in statement_resources:
                    yield action, repr(resource), condition


def _code_pairs(template: dict[str, Any], grants: set[Grant]) -> set[tuple[str, str, str]]:
    return {(grant.action, repr(arn), "None") for grant in grants for arn in _expected_arns(template, grant)}


def _roles_with_code(template: dict[str, Any], analyzer: AwsUsageAnalyzer) -> Iterator[tuple[str, set[Grant], str]]:
    for function in functions(template):
        function_properties = template["Resources"][function]["Properties"]
        grants = analyzer.usage(lambda_roots(analyzer.graph, function_properties["Handler"])).grants
        yield function_properties["Role"]["Fn::GetAtt"][0], grants, function
    for logical_id, resource in template["Resources"].items():
        entry_point = (resource.get("Metadata") or {}).get(ENTRY_POINT_METADATA)
        if entry_point:
            yield logical_id, analyzer.usage(entry_point_roots(analyzer.graph, entry_point)).grants, ""


def test_each_role_allows_every_action_its_code_performs_on_exactly_those_resources(packaged_stack, analyzer):
    roles = list(_roles_with_code(packaged_stack.template, analyzer))
    assert {role for role, _, _ in roles} >= {"WatcherTaskRole"}
    for role, grants, _function in roles:
        allowed = set(_allowed_pairs(properties(packaged_stack, role)["Policies"]))
        assert grants, role
        # Then every (action, resource) the code needs is allowed without a condition ...
        missing = _code_pairs(packaged_stack.template, grants) - allowed
        assert not missing, f"{role} lacks {sorted(missing)}"


def test_each_role_allows_nothing_its_code_or_platform_does_not_need(packaged_stack, analyzer):
    template = packaged_stack.template
    for role, grants, function in _roles_with_code(template, analyzer):
        allowed = set(_allowed_pairs(properties(packaged_stack, role)["Policies"]))
        explained = _code_pairs(template, grants)
        if function:
            received = {event_source_queue(template, s) for s in sqs_event_sources(template, function)}
            explained |= {(action, repr({"Fn::GetAtt": [queue, "Arn"]}), "None") for queue in received
                          for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")}
            explained |= {(action, repr({"Fn::GetAtt": [f"{function}LogGroup", "Arn"]}), "None")
                          for action in ("logs:CreateLogStream", "logs:PutLogEvents")}
            explained |= {("xray:PutTraceSegments", "'*'", "None"), ("xray:PutTelemetryRecords", "'*'", "None")}
        # Keys used through a service are allowed only with a kms:ViaService condition.
        via_service = {pair for pair in allowed if pair[0].startswith("kms:") and "kms:ViaService" in pair[2]}
        assert allowed - via_service <= explained, f"{role} allows {sorted(allowed - via_service - explained)}"
        assert all(pair[1] == repr({"Fn::GetAtt": ["DataKey", "Arn"]}) for pair in via_service)


@pytest.mark.parametrize("forbidden", ["dynamodb:*", "sqs:*", "kms:*", "s3:*", "*"])
def test_no_role_has_a_wildcard_action(packaged_stack, forbidden):
    for role in resources(packaged_stack, "AWS::IAM::Role"):
        for policy in properties(packaged_stack, role).get("Policies") or []:
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert forbidden not in actions and not any("*" in action for action in actions), role


def test_watcher_role_can_publish_events_and_checkpoint_but_not_manage_tokens(packaged_stack):
    allowed = set(_allowed_pairs(properties(packaged_stack, "WatcherTaskRole")["Policies"]))
    actions = {action for action, _, _ in allowed}
    assert {"sqs:SendMessage", "kms:Decrypt"} <= actions
    checkpoints_arn = repr({"Fn::GetAtt": ["CheckpointsTable", "Arn"]})
    checkpoint_writes = {a for a, resource, _ in allowed if resource == checkpoints_arn}
    assert checkpoint_writes & {"dynamodb:PutItem", "dynamodb:UpdateItem"}, checkpoint_writes
    tokens_arn = repr({"Fn::GetAtt": ["TokensTable", "Arn"]})
    assert not [pair for pair in allowed if pair[1] == tokens_arn]
    # It opens credentials, and seals the OAuth2 tokens it refreshes (services/oauth2_tokens.py).
    assert "kms:GenerateDataKey" in {a for a, _, c in allowed if c == "None"}


def test_api_role_can_find_and_delete_an_accounts_idempotency_records(packaged_stack):
    # Account deletion queries the account's partition and batch-deletes it.
    api, = (f for f in functions(packaged_stack.template) if properties(packaged_stack, f)["Handler"] == "app.app")
    policies = properties(packaged_stack, properties(packaged_stack, api)["Role"]["Fn::GetAtt"][0])["Policies"]
    records_arn = repr({"Fn::GetAtt": ["IdempotencyTable", "Arn"]})
    allowed = {action for action, resource, _ in _allowed_pairs(policies) if resource == records_arn}
    assert {"dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:DeleteItem"} <= allowed, allowed


def test_the_dead_letter_recorder_reads_the_webhook_dlq_and_may_write_the_delivery_log(packaged_stack):
    # Given the function of `record_webhook_dead_letters`
    template = packaged_stack.template
    recorder, = (f for f in functions(template)
                 if properties(packaged_stack, f)["Handler"] == "app.record_webhook_dead_letters")
    # Then it is subscribed to the events' dead-letter queue, and its role may write log entries whole
    assert [event_source_queue(template, s) for s in sqs_event_sources(template, recorder)] == \
        ["EventsDeadLetterQueue"]
    policies = properties(packaged_stack, properties(packaged_stack, recorder)["Role"]["Fn::GetAtt"][0])["Policies"]
    deliveries_arn = repr({"Fn::GetAtt": ["WebhookDeliveriesTable", "Arn"]})
    allowed = {action for action, resource, _ in _allowed_pairs(policies) if resource == deliveries_arn}
    assert {"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"} <= allowed, allowed


def test_the_local_template_file_is_what_was_merged(packaged_stack):
    # The packaged stack keeps every resource template.yaml defines (merge did not drop any).
    from local.resources import load_template

    source = load_template(Path(ROOT / "template.yaml"))["Resources"]
    typed = {logical_id for logical_id, resource in source.items() if resource.get("Type")}
    assert typed <= set(packaged_stack.template["Resources"])
