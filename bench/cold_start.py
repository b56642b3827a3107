"""Cold start: a fresh process to its first answer, against a bare client doing the same work.

    .venv/bin/python bench/cold_start.py [--samples 3] [--code CHECKOUT] [--profile FILE]

Starts Dovecot (temp dir, loopback), the moto server process of bench/watcher_stack with
the stack's tables and queues, a KMS key (accounts are sealed with the ``kms`` provider,
as on AWS), a webhook receiver (tests/support/webhook_receiver.py), registers one account
with 20 messages in INBOX, then times fresh processes, ``--samples`` of each, alternating
ours and the baseline; medians are printed.

    API first request   spawn -> ``import app`` -> ``app.app(event, context)`` of
                        GET /v1/account/{a}/messages?path=INBOX answering 200 (the event
                        API Gateway sends; token, account, KMS, pooled IMAP, decoding)
        baseline        spawn -> imapclient: connect, STARTTLS, LOGIN, EXAMINE INBOX,
                        FETCH of the same items of the same 20 messages
    consumer first batch  spawn -> ``import app`` -> ``app.deliver_webhooks(event, context)``
                        with one event as Lambda's SQS source hands it over, delivered to
                        the receiver (signed POST) and logged
        baseline        spawn -> urllib3 POST of the same body with an HMAC-SHA256 signature
                        header + one PutItem into the deliveries table with a bare boto3 client
    watcher first IDLE  spawn of ``python -m workers.watcher`` -> its first "idling" log line
                        (heartbeat, shard lease, account scan, connect, sync, IDLE; DEBUG log)
        baseline        spawn -> imapclient: connect, STARTTLS, LOGIN, SELECT INBOX, IDLE
    import rows         ``import app`` (every Lambda: Chalice packages the routes and each
                        SQS handler as functions of app.py) and ``import workers.watcher``,
                        timed inside the process; the goal (300 ms) is the baseline column
    RSS                 the API process's peak RSS after its first answer, against the
                        bare client's; the goal is 70 MB

``--code CHECKOUT`` times another checkout's code against the same servers (before/after).
Our code runs from a temporary copy of app.py, chalicelib/ and workers/, twice: as source
(no __pycache__, ``-B``: every module compiled on import) and as compiled bytecode
(``compileall``, what ``make package`` ships). Libraries are the virtualenv's in both.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from watcher_stack import ROOT, AwsStack, process_cpu_seconds, register_accounts

os.environ["IMAPLESS_KEY_PROVIDER"] = "kms"  # as on AWS: the first request unwraps the account's key
# Each sample is a process that exits holding its IMAP connection lease, as a reclaimed Lambda
# does; the lease outlives it (IMAPLESS_IMAP_LEASE_SECONDS), so the per-account cap would refuse
# the fourth sample within a minute. The cap is not what this bench measures.
os.environ["IMAPLESS_API_CONNECTIONS_PER_ACCOUNT"] = "1000"
from api_latency import build_messages, fill_mailbox, setup_aws

IMPORT_GOAL_MS = 300
RSS_GOAL_MB = 70
RATIO_GOAL = 2.0
ACCOUNT = "cold"
MESSAGES = 20

# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report the parent's.
# CPU: user + system seconds of the whole process, interpreter start included.
CHILD_METERS = """
import os
def peak_rss_mb():
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    return int(status.split()[0]) / 1024
def cpu_ms():
    times = os.times()
    return (times.user + times.system) * 1000
"""

API_CHILD = CHILD_METERS + """
import json, os, time, uuid
started, started_cpu = time.perf_counter(), cpu_ms()
import app
imported, imported_cpu = time.perf_counter(), cpu_ms()
class Context:
    function_name = os.environ["BENCH_FUNCTION"]; memory_limit_in_mb = 1024; aws_request_id = str(uuid.uuid4())
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:" + function_name
    def get_remaining_time_in_millis(self): return 30_000
answer = getattr(app, os.environ["BENCH_HANDLER"])(json.loads(os.environ["BENCH_EVENT"]), Context())
assert os.environ["BENCH_HANDLER"] != "app" or answer["statusCode"] == 200, answer
print(json.dumps({"import_ms": (imported - started) * 1000, "import_cpu_ms": imported_cpu - started_cpu,
                  "rss_mb": peak_rss_mb(), "cpu_ms": cpu_ms()}), flush=True)
"""

IMAP_BASELINE_CHILD = CHILD_METERS + """
import json, os, ssl
from imapclient import IMAPClient
client = IMAPClient("localhost", port=int(os.environ["BENCH_IMAP_PORT"]), ssl=False, timeout=30)
client.starttls(ssl.create_default_context())
client.login(os.environ["BENCH_USER"], os.environ["BENCH_PASSWORD"])
if os.environ["BENCH_IDLE"]:
    client.select_folder("INBOX")
    client.idle()
else:
    client.select_folder("INBOX", readonly=True)
    assert len(client.fetch(list(range(1, 21)), json.loads(os.environ["BENCH_ITEMS"]))) == 20
print(json.dumps({"rss_mb": peak_rss_mb(), "cpu_ms": cpu_ms()}), flush=True)
"""

WEBHOOK_BASELINE_CHILD = CHILD_METERS + """
import base64, hashlib, hmac, json, os, time
import boto3, urllib3
body = os.environ["BENCH_BODY"].encode()
stamp = str(int(time.time()))
signature = base64.b64encode(hmac.new(b"bench-secret", stamp.encode() + b"." + body, hashlib.sha256).digest())
answer = urllib3.PoolManager().request("POST", os.environ["BENCH_URL"], body=body, headers={
    "Content-Type": "application/json", "webhook-timestamp": stamp, "webhook-signature": "v1," + signature.decode()})
assert answer.status == 200
boto3.client("dynamodb").put_item(TableName=os.environ["BENCH_TABLE"], Item={
    "eventId": {"S": "baseline-" + stamp + os.urandom(4).hex()}, "statusCode": {"N": "200"}})
print(json.dumps({"rss_mb": peak_rss_mb(), "cpu_ms": cpu_ms()}), flush=True)
"""

IMPORT_CHILD = CHILD_METERS + """
import json, sys, time
started, started_cpu = time.perf_counter(), cpu_ms()
__import__(sys.argv[1])
print(json.dumps({"import_ms": (time.perf_counter() - started) * 1000, "cpu_ms": cpu_ms() - started_cpu}),
      flush=True)
"""


class CodeCopy:
    """app.py, chalicelib/ and workers/ in a temp dir, as source or compiled to bytecode."""

    def __init__(self, compiled: bool, source: Path = ROOT) -> None:
        self.compiled = compiled
        self.path = Path(tempfile.mkdtemp(prefix="bench-cold-"))
        shutil.copy2(source / "app.py", self.path)
        for package in ("chalicelib", "workers"):
            shutil.copytree(source / package, self.path / package, ignore=shutil.ignore_patterns("__pycache__"))
        if compiled:
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(self.path)], check=True,
                           stdout=subprocess.DEVNULL)

    @property
    def label(self) -> str:
        return "compiled" if self.compiled else "source"

    def environment(self, **extra: str) -> dict[str, str]:
        environment = {**os.environ, "PYTHONPATH": str(self.path), **extra}
        if not self.compiled:
            environment["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            environment.pop("PYTHONDONTWRITEBYTECODE", None)
        return environment

    def command(self, *arguments: str) -> list[str]:
        return [sys.executable, *(() if self.compiled else ("-B",)), *arguments]

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def run_child(command: list[str], environment: dict[str, str], cwd: Path) -> tuple[float, dict]:
    """Spawn -> the child's one JSON line (it prints it once its work is done): seconds, the line."""
    started = time.perf_counter()
    answer = subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if answer.returncode != 0:
        raise RuntimeError(f"{command[-1][:60]!r} failed:\n{answer.stderr[-3000:]}")
    return elapsed, json.loads(answer.stdout.strip().splitlines()[-1])


def watcher_first_idle(code: CodeCopy) -> tuple[float, float]:
    """Spawn ``python -m workers.watcher`` -> its first "idling" line: seconds, and its CPU seconds then."""
    environment = code.environment(IMAPLESS_LOG_LEVEL="DEBUG")
    started = time.perf_counter()
    process = subprocess.Popen(code.command("-m", "workers.watcher"), env=environment, cwd=code.path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if '"idling"' in line:
                return time.perf_counter() - started, process_cpu_seconds(process.pid)
        raise RuntimeError("the watcher exited before its first IDLE:\n" + "".join(seen[-30:]))
    finally:
        process.send_signal(signal.SIGTERM)  # a clean stop releases its shard leases for the next sample
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def api_event(account: str, token: str) -> dict:
    resource_path = "/v1/account/{account}/messages"
    path = f"/v1/account/{account}/messages"
    headers = {"Authorization": f"Bearer {token}", "Host": "localhost", "Accept": "application/json"}
    return {"resource": resource_path, "path": path, "httpMethod": "GET", "headers": headers,
            "multiValueHeaders": {name: [value] for name, value in headers.items()},
            "queryStringParameters": {"path": "INBOX"}, "multiValueQueryStringParameters": {"path": ["INBOX"]},
            "pathParameters": {"account": account}, "stageVariables": None, "body": None, "isBase64Encoded": False,
            "requestContext": {"resourcePath": resource_path, "httpMethod": "GET", "path": f"/api{path}",
                               "requestId": secrets.token_hex(8), "stage": "api",
                               "identity": {"sourceIp": "127.0.0.1"}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=3, help="fresh processes per row and side (median)")
    parser.add_argument("--profile", metavar="FILE", help="instead of measuring: profile one compiled API first "
                        "request (cProfile stats to FILE; read with python -m pstats FILE)")
    parser.add_argument("--code", type=Path, default=ROOT, metavar="CHECKOUT",
                        help="time the app.py, chalicelib/ and workers/ of another checkout (before/after)")
    args = parser.parse_args()

    from imapclient import IMAPClient

    from chalicelib.events import queue
    from chalicelib.events.publisher import SqsEventSink
    from chalicelib.imap.messages import BASE_ITEMS, SUMMARY_HEADER_ITEM
    from chalicelib.schemas.webhooks import SettingsUpdate
    from chalicelib.services import webhook_settings
    from chalicelib.settings import get_settings
    from chalicelib.webhooks.signing import generate_secret
    from local.dispatcher import lambda_sqs_event
    from tests.support.certs import make_test_pki
    from tests.support.mailservers import Dovecot
    from tests.support.webhook_receiver import WebhookReceiver

    workdir = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    pki = make_test_pki(workdir / "pki")
    os.environ["SSL_CERT_FILE"] = str(pki.ca_file)
    dovecot = Dovecot(pki)
    dovecot.start()
    codes = [CodeCopy(compiled=False, source=args.code), CodeCopy(compiled=True, source=args.code)]
    try:
        with AwsStack(), WebhookReceiver() as receiver:
            user, password = "cold@example.test", secrets.token_urlsafe(12)
            dovecot.add_user(user, password)
            token = setup_aws()
            register_accounts(dovecot, {ACCOUNT: (user, password)})
            filler = IMAPClient("localhost", port=dovecot.imap_port, ssl=False, timeout=30)
            filler.starttls(ssl.create_default_context(cafile=str(pki.ca_file)))
            filler.login(user, password)
            fill_mailbox(filler, build_messages(MESSAGES))
            filler.logout()
            webhook_settings.update_settings(SettingsUpdate(webhooks=receiver.url(), webhooksEnabled=True,
                                                            webhookSecret=generate_secret()))
            sqs, queue_url = queue.get_sqs_client(), queue.queue_url()
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url,
                                                 AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

            imap_env = {"BENCH_IMAP_PORT": str(dovecot.imap_port), "BENCH_USER": user, "BENCH_PASSWORD": password,
                        "BENCH_ITEMS": json.dumps([*BASE_ITEMS, SUMMARY_HEADER_ITEM])}
            bare = {**os.environ, **imap_env}
            baseline_cwd = Path(tempfile.gettempdir())

            def one_sqs_event() -> dict:
                from chalicelib.events.model import Event, event_id

                SqsEventSink().publish([Event(id=event_id(ACCOUNT, "messageNew", secrets.token_hex(8)),
                                              account=ACCOUNT, event="messageNew", path="INBOX",
                                              data={"uid": 1, "subject": "Quarterly report"})])
                messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=5,
                                               MessageSystemAttributeNames=["All"],
                                               MessageAttributeNames=["All"]).get("Messages") or []
                assert len(messages) == 1, "the published event did not come back from the queue"
                return lambda_sqs_event(messages, queue_arn, get_settings().aws_region)

            if args.profile:
                code = codes[1]
                (code.path / "first_request.py").write_text(API_CHILD)
                run_child(code.command("-m", "cProfile", "-o", str(Path(args.profile).resolve()), "first_request.py"),
                          code.environment(BENCH_HANDLER="app", BENCH_FUNCTION="api_handler",
                                           BENCH_EVENT=json.dumps(api_event(ACCOUNT, token))), code.path)
                return

            # row -> side -> [(wall seconds, CPU seconds)]
            results: dict[str, dict[str, list[tuple[float, float]]]] = {}

            def sample(key: str, side: str, measure: Callable[[], tuple[float, float]]) -> None:
                results.setdefault(key, {}).setdefault(side, []).append(measure())

            rss: dict[str, list[float]] = {}
            for index in range(args.samples):
                def bare_imap(idle: bool) -> tuple[float, float]:
                    seconds, line = run_child([sys.executable, "-c", IMAP_BASELINE_CHILD],
                                              {**bare, "BENCH_IDLE": "1" if idle else ""}, baseline_cwd)
                    rss.setdefault("baseline", []).append(line["rss_mb"])
                    return seconds, line["cpu_ms"] / 1000

                def bare_webhook() -> tuple[float, float]:
                    body = json.dumps({"id": f"baseline-{secrets.token_hex(4)}", "event": "messageNew",
                                       "account": ACCOUNT})
                    seconds, line = run_child([sys.executable, "-c", WEBHOOK_BASELINE_CHILD],
                                              {**bare, "BENCH_BODY": body, "BENCH_URL": receiver.url("/baseline"),
                                               "BENCH_TABLE": get_settings().table_name("webhook-deliveries")},
                                              baseline_cwd)
                    return seconds, line["cpu_ms"] / 1000

                sample("api", "baseline", lambda: bare_imap(False))
                sample("consumer", "baseline", bare_webhook)
                sample("watcher", "baseline", lambda: bare_imap(True))
                for code in codes:
                    def ours_api(code: CodeCopy = code) -> tuple[float, float]:
                        seconds, line = run_child(code.command("-c", API_CHILD), code.environment(
                            BENCH_HANDLER="app", BENCH_FUNCTION="api_handler",
                            BENCH_EVENT=json.dumps(api_event(ACCOUNT, token))), code.path)
                        rss.setdefault(code.label, []).append(line["rss_mb"])
                        results.setdefault(f"import app ({code.label})", {}).setdefault("ours", []).append(
                            (line["import_ms"] / 1000, line["import_cpu_ms"] / 1000))
                        return seconds, line["cpu_ms"] / 1000

                    def ours_consumer(code: CodeCopy = code) -> tuple[float, float]:
                        event = one_sqs_event()
                        seconds, line = run_child(code.command("-c", API_CHILD), code.environment(
                            BENCH_HANDLER="deliver_webhooks", BENCH_FUNCTION="deliver_webhooks",
                            BENCH_EVENT=json.dumps(event)), code.path)
                        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=event["Records"][0]["receiptHandle"])
                        return seconds, line["cpu_ms"] / 1000

                    def ours_watcher_import(code: CodeCopy = code) -> tuple[float, float]:
                        line = run_child(code.command("-c", IMPORT_CHILD, "workers.watcher"), code.environment(),
                                         code.path)[1]
                        return line["import_ms"] / 1000, line["cpu_ms"] / 1000

                    sample(f"api ({code.label})", "ours", ours_api)
                    sample(f"consumer ({code.label})", "ours", ours_consumer)
                    sample(f"watcher ({code.label})", "ours", lambda code=code: watcher_first_idle(code))
                    sample(f"import workers.watcher ({code.label})", "ours", ours_watcher_import)
                print(f"sample {index + 1}/{args.samples} done", file=sys.stderr, flush=True)
            delivered = [r for r in receiver.requests if r.path != "/baseline"]
            assert len(delivered) >= 2 * args.samples, f"only {len(delivered)} webhooks arrived"
    finally:
        for code in codes:
            code.remove()
        dovecot.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print_table(results, rss, args.samples)


def print_table(results: dict[str, dict[str, list[tuple[float, float]]]], rss: dict[str, list[float]],
                samples: int) -> None:
    def median_ms(values: list[tuple[float, float]], which: int) -> float:
        return statistics.median(value[which] for value in values) * 1000

    rows = []
    names = {"api": "API first request", "consumer": "webhook consumer first batch", "watcher": "watcher first IDLE"}
    for variant in ("source", "compiled"):
        for key, name in names.items():
            ours, baseline = results[f"{key} ({variant})"]["ours"], results[key]["baseline"]
            rows.append((f"{name} ({variant})", *(f"{median_ms(v, 0):,.0f}" for v in (ours, baseline)),
                         median_ms(ours, 0) / median_ms(baseline, 0),
                         *(f"{median_ms(v, 1):,.0f}" for v in (ours, baseline)),
                         f"{median_ms(ours, 1) / median_ms(baseline, 1):.2f}", RATIO_GOAL))
        for entry in ("import app", "import workers.watcher"):
            ours = results[f"{entry} ({variant})"]["ours"]
            rows.append((f"{entry} ({variant})", f"{median_ms(ours, 0):,.0f}", f"goal {IMPORT_GOAL_MS}",
                         median_ms(ours, 0) / IMPORT_GOAL_MS, f"{median_ms(ours, 1):,.0f}", "", "", 1.0))
        ours_rss = statistics.median(rss[variant])
        rows.append((f"API RSS after first answer, MB ({variant})", f"{ours_rss:.0f}",
                     f"{statistics.median(rss['baseline']):.0f}; goal {RSS_GOAL_MB}", ours_rss / RSS_GOAL_MB,
                     "", "", "", 1.0))
    width = max(len(row[0]) for row in rows)
    print(f"\ncold start: medians of {samples} fresh processes per row and side, ms unless stated; "
          f"wall = spawn to answer, CPU = the process's user + system time; ratio = ours / baseline "
          f"(import and RSS rows: ours / goal)")
    print(f"{'':<{width}}  {'wall ours':>9}  {'baseline':>12}  {'ratio':>6}  {'CPU ours':>8}  {'baseline':>8}  "
          f"{'ratio':>6}  goal (wall)")
    for name, ours, baseline, ratio, cpu_ours, cpu_baseline, cpu_ratio, goal in rows:
        verdict = "ok" if ratio <= goal else "missed"
        print(f"{name:<{width}}  {ours:>9}  {baseline:>12}  {ratio:>6.2f}  {cpu_ours:>8}  {cpu_baseline:>8}  "
              f"{cpu_ratio:>6}  <= {goal:g} {verdict}")
    print(f"load average at the end of the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          f"(wall times grow with it; CPU times much less)")


if __name__ == "__main__":
    main()
