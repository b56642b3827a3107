"""Webhook delivery: throughput of one dispatcher process and the latency it adds.

    .venv/bin/python bench/webhook_throughput.py [--events 1000] [--accounts 100] [--latency-events 200]

Starts its own moto server (a separate process, so the emulator gets its own core; see
bench/watcher_stack) with the stack's tables and queues from template.yaml, a loopback HTTP
receiver (keep-alive, tests/support/webhook_receiver.py) and configures webhooks to it.
Then measures:

    throughput   --events over --accounts accounts (message groups), published in batches of
                 10 so that at most 100 wait in the queue (see Feeder); deliveries/s between
                 the first and the last request the receiver gets from
                 ``python -m local.dispatcher`` (default concurrency), and the dispatcher's
                 own CPU time per delivery (from /proc)
    latency      with the dispatcher idle, one event at a time (--rate per second): from
                 SendMessage returning to the request arriving at the receiver; p50/p95

Baselines, measured in the same run against the same servers:

    http         the same signed bodies POSTed by the same pooled client (post_webhook), with
                 as many threads as the dispatcher has workers: the receiver + client limit
    sqs          receive(10) + delete_batch of the same number of events by one thread, and
                 send -> long-poll receive latency: the queue emulator's limit and floor
    aws calls    exactly the AWS calls a batch of 10 delivered events costs (receive 10, one
                 BatchGetItem and one BatchWriteItem of their log items, delete 10), as many
                 loops as dispatcher workers, nothing else: the emulator's ceiling for the
                 dispatcher's work

Ratios are ours / baseline. Locally the emulator, not the dispatcher, sets the ceiling
of the end-to-end rate (moto answers every call in Python on one core, slower than
DynamoDB and SQS), so the end-to-end rate says how close we get to that ceiling, not what
one process can do. The figure that answers "deliveries per second per process" is the
dispatcher's own CPU time per delivery, inverted: deliveries per CPU-second of the
dispatcher is the rate one process (one core, one GIL) sustains once the backend keeps
up, which is what DynamoDB and SQS do for it on AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Sets the AWS environment before chalicelib is imported; moto in its own process.
from bench.watcher_stack import AwsStack, percentile, test_aws  # noqa: E402

QUEUE_DEPTH = 100
GOAL_PER_PROCESS = 500  # deliveries/s of one dispatcher process (the product goal)


class Dispatcher:
    """``python -m local.dispatcher`` as the system runs it, stopped with SIGTERM; its CPU
    time is sampled every 50 ms so the cost of a time window can be read afterwards."""

    def __init__(self) -> None:
        self.log = Path(tempfile.mkstemp(prefix="bench-dispatcher-", suffix=".log")[1])
        self.cpu_samples: list[tuple[float, float]] = []  # (wall time, CPU seconds so far)
        self._stop = threading.Event()

    def __enter__(self) -> Dispatcher:
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen([sys.executable, "-m", "local.dispatcher"], cwd=ROOT,
                                        env={**os.environ, "IMAPLESS_LOG_LEVEL": "WARNING"},
                                        stdout=self._log_file, stderr=subprocess.STDOUT)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        while not self._stop.wait(0.05):
            try:
                fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return
            self.cpu_samples.append((time.time(), (int(fields[11]) + int(fields[12])) / ticks))

    def cpu_between(self, start: float, end: float) -> float:
        def at(moment: float) -> float:
            earlier = [cpu for wall, cpu in self.cpu_samples if wall <= moment]
            return earlier[-1] if earlier else 0.0
        return at(end + 0.05) - at(start)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.process.terminate()
        self.process.wait(timeout=15)
        self._log_file.close()
        self.log.unlink()


def make_events(count: int, accounts: int) -> list:
    from chalicelib.events.model import Event, event_id

    return [Event(id=event_id("bench", n, secrets.token_hex(4)), account=f"bench-{n % accounts}",
                  event="messageNew", path="INBOX",
                  data={"uid": n, "subject": "Quarterly report", "from": {"address": "a@example.test"}})
            for n in range(count)]


class CpuMeter:
    """CPU seconds spent by the threads that report to it (time.thread_time deltas): the
    client side of a baseline only, not the receiver or the feeder in the same process."""

    def __init__(self) -> None:
        self.seconds, self._lock = 0.0, threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds


def bench_http(url: str, events: list, key: bytes, threads: int, cpu: CpuMeter) -> float:
    from chalicelib.webhooks.client import post_webhook
    from chalicelib.webhooks.signing import signed_headers

    bodies = [(e.id, e.to_json().encode()) for e in events]

    def post(item: tuple[str, bytes]) -> None:
        started = time.thread_time()
        result = post_webhook(url, item[1], signed_headers([key], item[0], item[1]), 10)
        cpu.add(time.thread_time() - started)
        assert result.succeeded, result

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, bodies))
    return len(bodies) / (time.perf_counter() - started)


class Feeder(threading.Thread):
    """Publishes events (batches of 10, as the watcher does) keeping at most ``depth`` of them
    waiting: moto's FIFO receive scans every queued message, so a deep queue would measure
    moto's scan, not the consumer. ``consumed`` says how many the consumer has finished."""

    def __init__(self, events: list, consumed: Callable[[], int], depth: int = QUEUE_DEPTH) -> None:
        super().__init__(daemon=True)
        self.events, self.consumed, self.depth = events, consumed, depth

    def run(self) -> None:
        from chalicelib.events.publisher import SqsEventSink

        sink, published = SqsEventSink(), 0
        while published < len(self.events):
            if published - self.consumed() >= self.depth:
                time.sleep(0.001)
                continue
            sink.publish(self.events[published:published + 10])
            published += 10


def bench_sqs_drain(sqs, queue_url: str, events: list) -> float:
    """One consumer receiving 10 and deleting them, fed like the dispatcher is."""
    taken = 0
    feeder = Feeder(events, lambda: taken)
    feeder.start()
    started = time.perf_counter()
    while taken < len(events):
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                       MessageSystemAttributeNames=["All"],
                                       MessageAttributeNames=["All"]).get("Messages") or []
        if messages:
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        taken += len(messages)
    feeder.join()
    return len(events) / (time.perf_counter() - started)


def _log_item(message: dict) -> dict:
    """A delivery-log item shaped like the consumer's (every attribute a delivered event has)."""
    now = "2026-01-01T00:00:00.000000+0000"
    event_id = "mix-" + message["MessageId"]
    return {"eventId": {"S": event_id}, "account": {"S": "bench"}, "event": {"S": "messageNew"},
            "eventDate": {"S": now}, "day": {"S": "2026-01-01"}, "sortKey": {"S": f"2026-01-01T00:00:00Z#{event_id}"},
            "body": {"S": message["Body"]}, "status": {"S": "delivered"}, "attempts": {"N": "1"},
            "runId": {"S": "original"}, "lastStatusCode": {"N": "200"}, "lastAttemptAt": {"S": now},
            "deliveredAt": {"S": now}, "createdAt": {"S": now}, "updatedAt": {"S": now},
            "expiresAt": {"N": "1767225600"}}


def bench_call_mix(sqs, queue_url: str, events: list, threads: int, cpu: CpuMeter) -> float:
    """The AWS calls a batch of delivered events costs, with nothing else: receive(10), one
    consistent BatchGetItem of their log items, one BatchWriteItem of the new items, then
    delete_batch; ``threads`` loops at once, fed like the dispatcher. The emulator's ceiling
    for the dispatcher's work."""
    import boto3
    from botocore.config import Config

    from chalicelib.settings import get_settings

    # Configured as pynamodb configures its client (no client-side parameter validation).
    dynamodb = boto3.client("dynamodb", region_name=test_aws.REGION, config=Config(parameter_validation=False))
    log = get_settings().table_name("webhook-deliveries")
    lock, done = threading.Lock(), [0]

    def loop() -> None:
        started = time.thread_time()
        while done[0] < len(events):
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                           MessageSystemAttributeNames=["All"],
                                           MessageAttributeNames=["All"]).get("Messages") or []
            if not messages:
                continue
            items = [_log_item(message) for message in messages]
            dynamodb.batch_get_item(RequestItems={log: {"Keys": [{"eventId": i["eventId"]} for i in items],
                                                        "ConsistentRead": True}})
            dynamodb.batch_write_item(RequestItems={log: [{"PutRequest": {"Item": i}} for i in items]})
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
            with lock:
                done[0] += len(messages)
        cpu.add(time.thread_time() - started)

    feeder = Feeder(events, lambda: done[0])
    feeder.start()
    started = time.perf_counter()
    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return len(events) / (time.perf_counter() - started)


def bench_sqs_latency(sqs, queue_url: str, count: int, rate: float) -> list[float]:
    """Send -> long-poll receive latency of the emulator, one message at a time."""
    latencies: list[float] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set():
            for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                               WaitTimeSeconds=1).get("Messages") or []:
                latencies.append(time.time() - json.loads(message["Body"])["sent"])
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    consumer = threading.Thread(target=consume)
    consumer.start()
    time.sleep(0.3)
    for n in range(count):
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"sent": time.time()}),
                         MessageGroupId=f"lat-{n % 20}", MessageDeduplicationId=secrets.token_hex(8))
        time.sleep(1 / rate)
    deadline = time.monotonic() + 10
    while len(latencies) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    consumer.join()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--latency-events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="events per second in the latency run")
    args = parser.parse_args()

    from chalicelib.events import queue
    from chalicelib.events.publisher import SqsEventSink
    from chalicelib.schemas.webhooks import SettingsUpdate
    from chalicelib.services import webhook_settings
    from chalicelib.settings import get_settings
    from chalicelib.webhooks.signing import generate_secret, parse_secret
    from tests.support.webhook_receiver import WebhookReceiver

    concurrency = get_settings().dispatcher_concurrency
    with AwsStack(), WebhookReceiver() as receiver:
        secret = generate_secret()
        webhook_settings.update_settings(SettingsUpdate(webhooks=receiver.url(), webhooksEnabled=True,
                                                        webhookSecret=secret))
        sqs, queue_url = queue.get_sqs_client(), queue.queue_url()

        # -- baselines ------------------------------------------------------------------------
        http_cpu, mix_cpu = CpuMeter(), CpuMeter()
        http_rate = bench_http(receiver.url("/baseline"), make_events(args.events, args.accounts),
                               parse_secret(secret), concurrency, http_cpu)
        sqs_rate = bench_sqs_drain(sqs, queue_url, make_events(args.events, args.accounts))
        mix_rate = bench_call_mix(sqs, queue_url, make_events(args.events, args.accounts), concurrency, mix_cpu)
        sqs_latency = bench_sqs_latency(sqs, queue_url, args.latency_events, args.rate)
        baseline_requests = len(receiver.requests)

        # -- ours: throughput -----------------------------------------------------------------
        events = make_events(args.events, args.accounts)
        wanted = {e.id for e in events}
        with Dispatcher() as dispatcher:
            Feeder(events, lambda: len(receiver.requests) - baseline_requests).start()
            arrived = receiver.wait_for(len(events), timeout=600, where=lambda r: r.webhook_id in wanted)
            times = sorted(r.received_at for r in arrived)
            our_rate = (len(times) - 1) / (times[-1] - times[0])
            time.sleep(0.2)
            cpu_per_delivery = dispatcher.cpu_between(times[0], times[-1]) / (len(times) - 1)

            # -- ours: latency, dispatcher idle ----------------------------------------------
            sent_at: dict[str, float] = {}
            singles = make_events(args.latency_events, 20)
            for event in singles:
                SqsEventSink().publish([event])
                sent_at[event.id] = time.time()
                time.sleep(1 / args.rate)
            single_ids = set(sent_at)
            received = receiver.wait_for(len(singles), timeout=60, where=lambda r: r.webhook_id in single_ids)
            our_latency = [r.received_at - sent_at[r.webhook_id] for r in received]

    ms = 1000
    rows = [
        ("deliveries/s (one dispatcher)", f"{our_rate:,.0f}", "http POST loop", f"{http_rate:,.0f}",
         f"{our_rate / http_rate:.2f}"),
        ("", "", "sqs receive+delete", f"{sqs_rate:,.0f}", f"{our_rate / sqs_rate:.2f}"),
        ("", "", "aws calls of a delivery", f"{mix_rate:,.0f}", f"{our_rate / mix_rate:.2f}"),
        ("queue -> receiver p50 (ms)", f"{percentile(our_latency, .5) * ms:.1f}", "sqs send -> receive",
         f"{percentile(sqs_latency, .5) * ms:.1f}",
         f"{percentile(our_latency, .5) / percentile(sqs_latency, .5):.1f}"),
        ("queue -> receiver p95 (ms)", f"{percentile(our_latency, .95) * ms:.1f}", "sqs send -> receive",
         f"{percentile(sqs_latency, .95) * ms:.1f}",
         f"{percentile(our_latency, .95) / percentile(sqs_latency, .95):.1f}"),
    ]
    limits = {"http POST loop": http_rate, "sqs receive+delete": sqs_rate, "aws calls of a delivery": mix_rate}
    print(f"webhook delivery: {args.events} events over {args.accounts} accounts, dispatcher concurrency "
          f"{concurrency}; latency: {args.latency_events} events at {args.rate:g}/s")
    print(f"{'metric':32} {'ours':>8}   {'baseline':24} {'value':>8} {'ratio':>6}")
    for metric, ours, baseline, value, ratio in rows:
        print(f"{metric:32} {ours:>8}   {baseline:24} {value:>8} {ratio:>6}")
    added_p50 = (percentile(our_latency, .5) - percentile(sqs_latency, .5)) * ms
    added_p95 = (percentile(our_latency, .95) - percentile(sqs_latency, .95)) * ms
    print(f"added latency over the queue's own: p50 {added_p50:.1f} ms, p95 {added_p95:.1f} ms "
          f"(mean ours {statistics.mean(our_latency) * ms:.1f} ms)")
    print(f"local limit of the end-to-end rate: {min(limits, key=limits.get)} ({min(limits.values()):,.0f}/s)")
    bare_cpu = (http_cpu.seconds + mix_cpu.seconds) / args.events
    print()
    print(f"PER-PROCESS CAPACITY (the goal: >= {GOAL_PER_PROCESS} deliveries/s per dispatcher process)")
    print(f"  dispatcher CPU per delivery {cpu_per_delivery * ms:.2f} ms -> {1 / cpu_per_delivery:,.0f} deliveries "
          f"per CPU-second: {'MET' if 1 / cpu_per_delivery >= GOAL_PER_PROCESS else 'NOT MET'}")
    print(f"  baseline: bare loops making the same AWS calls + the same POST: {bare_cpu * ms:.2f} ms CPU per "
          f"delivery (~{1 / bare_cpu:,.0f}/CPU-second); ratio ours/bare CPU {cpu_per_delivery / bare_cpu:.2f}")
    print("  (the end-to-end rate above is moto's ceiling, not ours: moto answers every call on one core;\n"
          "   one dispatcher process is bounded by its own CPU once the backend keeps up, as SQS/DynamoDB do)")


if __name__ == "__main__":
    main()
