"""The IAM analyzer on small synthetic projects: what it must find, and what it must not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from deploy.aws_actions import AnalysisError, AwsUsageAnalyzer, Grant
from deploy.codegraph import CodeGraph

MODELS = '''
from pynamodb.attributes import UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from pkg.settings import get_settings

_settings = get_settings()
NOTES = "notes"


class ByOwner(GlobalSecondaryIndex):
    class Meta:
        index_name = "byOwner"
        projection = AllProjection()

    owner = UnicodeAttribute(hash_key=True)


class NoteItem(Model):
    class Meta:
        table_name = _settings.table_name(NOTES)

    id = UnicodeAttribute(hash_key=True)
    by_owner = ByOwner()


class LeaseItem(Model):
    class Meta:
        table_name = _settings.table_name("leases")

    key = UnicodeAttribute(hash_key=True)


def lease_check(key):
    return LeaseItem, key, LeaseItem.key.exists()
'''


def project(tmp_path: Path, **modules: str) -> CodeGraph:
    """A package ``pkg`` with the given modules (name -> source) under ``tmp_path``."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(textwrap.dedent("""
        class _Settings:
            def table_name(self, short):
                return f"test-{short}"

        def get_settings():
            return _Settings()
    """))
    for name, source in modules.items():
        (package / f"{name}.py").write_text(textwrap.dedent(source))
    return CodeGraph(tmp_path, packages=("pkg",), modules=())


def usage(graph: CodeGraph, *roots: str) -> set[tuple[str, tuple[str, ...]]]:
    return {(grant.action, grant.resource) for grant in AwsUsageAnalyzer(graph).usage(roots).grants}


def test_pynamodb_class_instance_index_and_batch_operations_map_to_their_table(tmp_path):
    # Given a store module using a model every way pynamodb offers
    graph = project(tmp_path, models=MODELS, store='''
        from pkg.models import NoteItem

        def read(note_id):
            return NoteItem.get(note_id)

        def write(note_id):
            item = NoteItem(note_id)
            item.save()
            NoteItem(note_id).delete()

        def by_owner(owner):
            for item in NoteItem.by_owner.query(owner):
                item.update(actions=[])

        def wipe(ids):
            with NoteItem.batch_write() as batch:
                for note_id in ids:
                    batch.delete(NoteItem(note_id))

        def size():
            return NoteItem.count()
    ''')
    # When the analyzer walks from each function
    # Then each operation is the IAM action on the model's table (or its index)
    assert usage(graph, "pkg.store:read") == {("dynamodb:GetItem", ("table", "notes"))}
    assert usage(graph, "pkg.store:write") == {("dynamodb:PutItem", ("table", "notes")),
                                               ("dynamodb:DeleteItem", ("table", "notes"))}
    assert usage(graph, "pkg.store:by_owner") == {("dynamodb:Query", ("index", "notes", "byOwner")),
                                                  ("dynamodb:UpdateItem", ("table", "notes"))}
    assert usage(graph, "pkg.store:wipe") == {("dynamodb:BatchWriteItem", ("table", "notes"))}
    assert usage(graph, "pkg.store:size") == {("dynamodb:DescribeTable", ("table", "notes"))}


def test_transactions_name_the_tables_of_their_items_and_of_returned_condition_models(tmp_path):
    graph = project(tmp_path, models=MODELS, store='''
        from pynamodb.connection import Connection
        from pynamodb.transactions import TransactWrite

        from pkg.models import NoteItem, lease_check

        def commit(note_id, operations):
            model, key, condition = lease_check("k")
            with TransactWrite(connection=Connection()) as transaction:
                transaction.condition_check(model, key, condition=condition)
                transaction.save(NoteItem(note_id))
                for item in operations:   # type unknown here: the module's constructed models
                    transaction.delete(item)
    ''')
    assert usage(graph, "pkg.store:commit") == {
        ("dynamodb:ConditionCheckItem", ("table", "leases")),
        ("dynamodb:PutItem", ("table", "notes")),
        ("dynamodb:DeleteItem", ("table", "notes")),
    }


def test_boto3_calls_map_through_client_factories_in_other_modules(tmp_path):
    graph = project(tmp_path, clients='''
        import functools
        import boto3

        @functools.lru_cache(maxsize=1)
        def get_sqs_client():
            return boto3.client("sqs")
    ''', publisher='''
        from pkg import clients

        def publish(bodies, url):
            client = clients.get_sqs_client()
            client.send_message_batch(QueueUrl=url, Entries=bodies)
            clients.get_sqs_client().change_message_visibility_batch(QueueUrl=url, Entries=[])
    ''')
    # Then batch operations are authorised by their single-message IAM actions
    assert usage(graph, "pkg.publisher:publish") == {("sqs:SendMessage", ("sqs",)),
                                                     ("sqs:ChangeMessageVisibility", ("sqs",))}


def test_objects_built_by_other_calls_are_not_clients(tmp_path):
    # Given a module with a KMS client *and* AES-GCM objects whose methods share KMS names
    graph = project(tmp_path, envelope='''
        import boto3
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        def unwrap(blob):
            return boto3.client("kms").decrypt(CiphertextBlob=blob)

        def local_open(key, nonce, data):
            aead = AESGCM(key)
            aead.encrypt(nonce, data, None)
            return AESGCM(key).decrypt(nonce, data, None)
    ''')
    assert usage(graph, "pkg.envelope:unwrap") == {("kms:Decrypt", ("kms",))}
    assert usage(graph, "pkg.envelope:local_open") == set()


def test_presigned_urls_need_the_presigned_action_and_sts_identity_needs_nothing(tmp_path):
    graph = project(tmp_path, downloads='''
        import boto3

        def hand_out(bucket, key):
            s3 = boto3.client("s3")
            s3.put_object(Bucket=bucket, Key=key, Body=b"")
            boto3.client("sts").get_caller_identity()
            return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
    ''')
    assert usage(graph, "pkg.downloads:hand_out") == {("s3:PutObject", ("s3",)), ("s3:GetObject", ("s3",))}


def test_powertools_persistence_layer_needs_item_crud_on_its_table(tmp_path):
    graph = project(tmp_path, idempotency='''
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        TABLE = "idempotency"

        def layer(settings):
            return DynamoDBPersistenceLayer(table_name=settings.table_name(TABLE))
    ''')
    assert usage(graph, "pkg.idempotency:layer") == {
        (f"dynamodb:{action}", ("table", "idempotency"))
        for action in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")}


def test_only_reachable_code_and_only_mentioned_methods_count(tmp_path):
    # Given a class whose methods use different tables, and a function never referenced
    graph = project(tmp_path, models=MODELS, store='''
        from pkg.models import LeaseItem, NoteItem

        class Broker:
            def acquire(self, key):
                LeaseItem(key).save()

            def forget(self, key):
                LeaseItem(key).delete()

        def unused():
            NoteItem("x").delete()
    ''', service='''
        from pkg.store import Broker

        def take(key):
            broker = Broker()
            broker.acquire(key)
    ''')
    # Then only Broker.acquire is reachable from take (forget is never named, unused never referenced)
    assert usage(graph, "pkg.service:take") == {("dynamodb:PutItem", ("table", "leases"))}


def test_a_model_without_a_resolvable_table_name_is_an_error(tmp_path):
    graph = project(tmp_path, models='''
        import os
        from pynamodb.models import Model

        class Item(Model):
            class Meta:
                table_name = os.environ["TABLE"]
    ''')
    with pytest.raises(AnalysisError, match="table_name"):
        AwsUsageAnalyzer(graph)


def test_handler_roots_unwrap_decorators_and_closures(tmp_path):
    graph = project(tmp_path, models=MODELS, routing='''
        import functools

        def route(handler):
            @functools.wraps(handler)
            def view(**params):
                return handler(params)
            return view
    ''', api='''
        from pkg.models import NoteItem
        from pkg.routing import route

        @route
        def get_note(params):
            return NoteItem.get(params["id"])
    ''')
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("pkg.api")
        roots = graph.root_keys(module.get_note)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name == "pkg" or name.startswith("pkg.")]:
            del sys.modules[name]
    assert roots == {"pkg.routing:route", "pkg.api:get_note"}
    assert AwsUsageAnalyzer(graph).usage(roots).grants == {Grant("dynamodb:GetItem", ("table", "notes"))}
