"""What a cold start pays for: the modules importing ``app`` loads, and the AWS clients a process makes.

Every deployed function imports ``app`` before its first request or batch (bench/cold_start.py
measures it). Each module below cost tens to hundreds of milliseconds of that import while
nothing on the API's path used it; they now load where they are used. The import runs in a
fresh interpreter, so what other tests imported does not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# module prefix -> where it belongs instead
NOT_AT_IMPORT = {
    "aws_xray_sdk": "the tracer, built only where tracing is on (observability.get_tracer)",
    "aws_lambda_powertools.utilities.batch": "nothing here uses it",
    "aws_lambda_powertools.utilities.data_classes": "the SQS consumers, on their first batch",
    "aws_lambda_powertools.utilities.idempotency": "the first request with an Idempotency-Key; the consumers",
    "chalicelib.webhooks.consumer": "the deliver_webhooks handler",
    "chalicelib.webhooks.dead_letters": "the record_webhook_dead_letters handler",
    "authlib": "the hosted OAuth2 authorization flow",
    "email_validator": "the first address checked",
    "boto3": "nothing: clients come from chalicelib.aws_clients (botocore)",
}


def _modules_after(statement: str) -> list[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    answer = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(answer.stdout.splitlines()[-1])


def test_importing_the_app_loads_nothing_the_api_does_not_use():
    loaded = _modules_after("import app")

    heavy = {prefix: where for prefix, where in NOT_AT_IMPORT.items()
             if any(name == prefix or name.startswith(prefix + ".") for name in loaded)}
    assert heavy == {}, "imported by `import app`; these belong elsewhere"


def test_importing_the_app_creates_no_aws_session_or_client():
    loaded = _modules_after("import app; from chalicelib import aws_clients; assert aws_clients._session is None")

    assert "app" in loaded


def test_every_table_and_the_queues_share_one_session():
    # Given two tables and the two modules that send to SQS (no AWS call is made: creating a
    # client only reads botocore's data)
    from chalicelib import aws_clients
    from chalicelib.events import queue
    from chalicelib.services import outbox
    from chalicelib.store.models import AccountItem, TokenItem

    # When each builds its client
    accounts = AccountItem._get_connection().connection
    tokens = TokenItem._get_connection().connection

    # Then pynamodb's tables use the process's session (each table keeps its own client and
    # connection pool), and the SQS users share one SQS client
    assert accounts.session is aws_clients.session()
    assert tokens.session is aws_clients.session()
    assert accounts.client is not tokens.client
    assert queue.get_sqs_client() is outbox.get_sqs_client()


def test_a_client_variant_is_its_own_client_and_reset_forgets_them():
    from botocore.config import Config

    from chalicelib import aws_clients

    plain = aws_clients.client("s3")
    path_style = aws_clients.client("s3", config=Config(s3={"addressing_style": "path"}))

    assert plain is not path_style
    assert aws_clients.client("s3", config=Config(s3={"addressing_style": "path"})) is path_style
    aws_clients.reset()
    assert aws_clients.client("s3") is not plain


def test_the_tracer_is_built_only_where_powertools_traces():
    # Outside Lambda (tests, make run, the watcher container) Powertools would not trace: no tracer, no X-Ray SDK.
    loaded = _modules_after("from chalicelib import observability; assert observability.get_tracer() is None")
    assert not [name for name in loaded if name.startswith("aws_xray_sdk")]

    # On Lambda it is built on first use (and patches botocore, as before).
    on_lambda = ("import os; os.environ['LAMBDA_TASK_ROOT'] = '/var/task'; from chalicelib import observability; "
                 "tracer = observability.get_tracer(); "
                 "assert tracer is not None and observability.get_tracer() is tracer")
    assert "aws_xray_sdk.core" in _modules_after(on_lambda)
