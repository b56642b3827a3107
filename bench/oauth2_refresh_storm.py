"""OAuth2 refresh storm: N accounts whose access tokens expire within the same minute, in one watcher.

    .venv/bin/python bench/oauth2_refresh_storm.py [--accounts 1000] [--samples 15]
    .venv/bin/python bench/oauth2_refresh_storm.py --accounts 50 --samples 5      # a quick run

A running watcher asks for no token when a token expires: its IMAP connections stay logged in
(docs/watcher.md), the token matters again at the next login. So the storm is at logins: a
watcher that starts (a deploy, a failover) inside the refresh-ahead window
(``IMAPLESS_OAUTH2_REFRESH_AHEAD_SECONDS``, 300 s) of N tokens that all expire within one
minute, and the same thing with the connections dropped by the provider (``doveadm kick``) once
the refreshed tokens (90 s lifetime at the test authorization server) have expired too::

    test authorization server (Authlib, this process) ◀── POST /token ── watcher (one process)
          ▲ POST /introspect (each XOAUTH2 login)                          │ N oauth2 + N password
    Dovecot (ScaleDovecot, oauth2 passdb) ◀──────── IMAP logins ───────────┘ accounts

Stage 1 (start): register N accounts with an application of the test server, each with an access
token expiring within one minute from 4 minutes on (inside the 300 s window: every login refreshes),
and N password accounts beside them; start one watcher on all 2N. Stage 2 (reconnect): once every
refreshed token has expired, kick every oauth2 connection at Dovecot. Each stage measures:

    token requests / account   per expiry: goal exactly 1 (min, max, accounts with != 1)
    authenticationError        events in the stage: goal 0 (connectError counted too)
    token calls / s            peak in any one second, and over how many seconds they spread
    introspection              Dovecot's token checks at the test server: how many, p50/p95 ms
    connect all                watcher start (or kick) -> last accountInitialized (oauth2, password)
    change latency             while the stage runs: LMTP delivery to an account already connected
                               -> its messageNew on the queue, beside the floor (a bare imapclient
                               IDLE on the same INBOX, same push), oauth2 and password accounts
                               alternately; goal p50 <= floor + 100 ms

``make bench`` runs the default: 1,000 + 1,000 accounts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from watcher_stack import AwsStack, percentile, raise_open_file_limit, register_accounts, summary
from watcher_stack.floor_client import FloorClient
from watcher_stack.scale import Collector, ScaleDovecot, raised_inotify_instances

from tests.integration.watcher_support import WatcherProcess
from tests.support.certs import make_test_pki
from tests.support.fixtures import MailUser
from tests.support.oauth2_server import OAuth2Server

TOKEN_LIFETIME_SECONDS = 90  # every token the test server grants from a refresh
FIRST_EXPIRY_SECONDS = 240  # the registered tokens expire within [240, 300) s of registration
EXPIRY_SPREAD_SECONDS = 60
STAGE_TIMEOUT_SECONDS = 600
LATE_AFTER_SECONDS = 15
SETTLE_SECONDS = 5
WATCHER_ENVIRONMENT = {"IMAPLESS_WATCHER_CONNECT_RATE": "400", "IMAPLESS_WATCHER_POOL_SIZE": "16",
                       "IMAPLESS_LOG_LEVEL": os.environ.get("BENCH_WATCHER_LOG_LEVEL", "WARNING")}


class StormServer(OAuth2Server):
    """The test authorization server, noting when each token request came and for whom, and how
    long each introspection took."""

    def __init__(self) -> None:
        super().__init__(access_token_seconds=TOKEN_LIFETIME_SECONDS)
        self.token_calls: list[tuple[float, str]] = []
        self.introspections: list[tuple[float, float]] = []  # (when, milliseconds)

    def respond(self, path: str, headers: dict[str, str], form: dict[str, str]) -> tuple[int, bytes, list]:
        started = time.time()
        if path == "/token":
            token = self.by_refresh_token(form.get("refresh_token", ""))
            self.token_calls.append((started, token.username if token else "?"))
        answer = super().respond(path, headers, form)
        if path == "/introspect":
            self.introspections.append((started, (time.time() - started) * 1000))
        return answer


def create_app(server: StormServer, dovecot: ScaleDovecot) -> str:
    from chalicelib.schemas.oauth2 import OAuth2AppCreate
    from chalicelib.services.oauth2_apps import create_app as create

    return create(OAuth2AppCreate.model_validate({
        "name": "Storm IdP", "provider": "generic", "clientId": server.client.client_id,
        "clientSecret": server.client.client_secret, "redirectUrl": "https://api.example.test/oauth",
        "authorizationUrl": server.base_url + "/authorize", "tokenUrl": server.token_url, "scopes": ["mail"],
        "imap": {"host": dovecot.hostname, "port": dovecot.imap_port, "secure": False}})).id


def register_oauth2_accounts(server: StormServer, app_id: str, users: dict[str, tuple[str, str]],
                             threads: int = 8) -> None:
    """Accounts with a refresh token and an access token that expires within one minute, from
    FIRST_EXPIRY_SECONDS on (spread evenly over the minute)."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime, timedelta

    from chalicelib.schemas.accounts import AccountCreate
    from chalicelib.services.accounts import create_account

    now = time.time()
    ordered = sorted(users)

    def one(account: str) -> None:
        email = users[account][0]
        lifetime = FIRST_EXPIRY_SECONDS + EXPIRY_SPREAD_SECONDS * ordered.index(account) // len(ordered)
        issued = server.issue(email, expires_in=lifetime)
        expires = datetime.fromtimestamp(now, UTC) + timedelta(seconds=lifetime)
        create_account(AccountCreate.model_validate({
            "account": account, "email": email, "verify": False,
            "oauth2": {"provider": app_id, "auth": {"user": email}, "refreshToken": issued.refresh_token,
                       "accessToken": issued.access_token, "expires": expires.isoformat()}}))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, ordered))


def spread(calls: list[float]) -> dict[str, float]:
    """Token calls per second: the peak, the median over the seconds that had any, the span."""
    if not calls:
        return {"peak": 0, "median": 0, "span_s": 0.0, "seconds": 0}
    per_second = Counter(int(at) for at in calls)
    return {"peak": max(per_second.values()), "median": percentile(list(per_second.values()), 0.5),
            "span_s": max(calls) - min(calls), "seconds": len(per_second)}


class Stage:
    """What one storm did: token calls, introspections, events, connect-all and latency samples."""

    def __init__(self, name: str, server: StormServer, queue: Collector, started: float) -> None:
        self.name, self.server, self.queue, self.started = name, server, queue, started
        self.token_mark, self.introspection_mark = len(server.token_calls), len(server.introspections)
        self.kinds_mark = Counter(queue.kinds)
        self.latency: dict[str, list[float]] = {"oauth2": [], "password": [], "floor": []}
        self.late = 0

    def result(self, oauth_users: dict[str, tuple[str, str]], connected: dict[str, float]) -> dict:
        calls = self.server.token_calls[self.token_mark:]
        per_user = Counter(user for _, user in calls)
        counts = [per_user.get(email.lower(), 0) for email, _ in oauth_users.values()]
        introspection = [ms for _, ms in self.server.introspections[self.introspection_mark:]]
        kinds = Counter(self.queue.kinds)
        kinds.subtract(self.kinds_mark)
        return {"stage": self.name, "token_calls": len(calls), "per_account_min": min(counts),
                "per_account_max": max(counts), "accounts_not_one": sum(1 for c in counts if c != 1),
                "spread": spread([at for at, _ in calls]), "auth_errors": kinds["authenticationError"],
                "connect_errors": kinds["connectError"], "introspections": len(introspection),
                "introspection_ms": (percentile(introspection, 0.5), percentile(introspection, 0.95))
                if introspection else (0.0, 0.0),
                "connect_all": connected, "latency": {k: summary(v) if v else None for k, v in self.latency.items()},
                "samples": {k: len(v) for k, v in self.latency.items()}, "late": self.late}


def sample_latency(stage: Stage, dovecot: ScaleDovecot, ready: dict[str, tuple[str, str, str]],
                   samples: int, rng: random.Random) -> None:
    """One delivery to a connected account of each kind in turn, measured against a bare IDLE."""
    for kind in ("oauth2", "password"):
        if len(stage.latency[kind]) >= samples:
            continue
        candidates = [a for a, (k, _, _) in ready.items() if k == kind]
        if not candidates:
            continue
        account = rng.choice(candidates)
        _, email, password = ready[account]
        floor = FloorClient(dovecot, MailUser(email, password), "INBOX", kinds=(b"EXISTS",))
        try:
            seen = len(stage.queue.new_at.get(account, []))
            sent = time.time()
            dovecot.deliver(email, b"Subject: storm probe\r\n\r\nx\r\n")
            pushed = floor.first_push_after(sent, timeout=LATE_AFTER_SECONDS)
            wait_until = time.monotonic() + LATE_AFTER_SECONDS
            while len(stage.queue.new_at.get(account, [])) <= seen and time.monotonic() < wait_until:
                time.sleep(0.01)
            arrived = stage.queue.new_at.get(account, [])
            if pushed is None or len(arrived) <= seen:
                stage.late += 1
                continue
            stage.latency["floor"].append((pushed - sent) * 1000)
            stage.latency[kind].append((arrived[seen] - sent) * 1000)
        finally:
            with contextlib.suppress(Exception):
                floor.close()


def run_stage(stage: Stage, dovecot: ScaleDovecot, watcher: WatcherProcess, users: dict[str, tuple[str, str, str]],
              oauth_users: dict[str, tuple[str, str]], samples: int, logged_in: Callable[[], dict[str, float]]) -> dict:
    """Sample latency while the stage's logins go on (then until ``samples`` each), until
    ``logged_in`` (kind -> seconds from the stage's start to the last login) says all are back."""
    queue, rng = stage.queue, random.Random(len(users))
    deadline = time.monotonic() + STAGE_TIMEOUT_SECONDS
    while True:
        if watcher.process.poll() is not None:
            raise RuntimeError(f"stage {stage.name}: the watcher exited\n{watcher.log_text()}")
        connected = logged_in()
        if connected and all(len(stage.latency[k]) >= samples for k in ("oauth2", "password")):
            break
        if time.monotonic() > deadline:
            print(f"stage {stage.name}: not every account logged in within {STAGE_TIMEOUT_SECONDS} s", flush=True)
            break
        ready = {a: users[a] for a in queue.initialized_at}
        if ready:
            sample_latency(stage, dovecot, ready, samples, rng)
        else:
            time.sleep(0.2)
    time.sleep(SETTLE_SECONDS)  # a second token request for an account would show now
    return stage.result(oauth_users, connected or {})


def run(size: int, samples: int) -> list[dict]:
    pki = make_test_pki(Path(tempfile.mkdtemp(prefix="bench-pki-")))
    os.environ["SSL_CERT_FILE"] = str(pki.ca_file)
    with StormServer() as server, AwsStack(), \
            ScaleDovecot(pki, oauth2_introspection_url=server.resource_server_url()) as dovecot:
        oauth_users = {f"storm-o-{n:05d}": (f"o{n:05d}-{secrets.token_hex(3)}@example.test", secrets.token_urlsafe(10))
                       for n in range(size)}
        password_users = {f"storm-p-{n:05d}": (f"p{n:05d}-{secrets.token_hex(3)}@example.test",
                                               secrets.token_urlsafe(10)) for n in range(size)}
        for email, password in [*oauth_users.values(), *password_users.values()]:
            dovecot.add_user(email, password)  # the floor client logs in with the password
        users = {**{a: ("oauth2", e, p) for a, (e, p) in oauth_users.items()},
                 **{a: ("password", e, p) for a, (e, p) in password_users.items()}}
        registered = time.time()
        register_oauth2_accounts(server, create_app(server, dovecot), oauth_users)
        register_accounts(dovecot, password_users)
        if time.time() - registered > FIRST_EXPIRY_SECONDS:
            raise RuntimeError("registration outlasted the tokens' first expiry: fewer accounts, or a later expiry")
        queue = Collector()
        started = time.time()
        watcher = WatcherProcess(queue, "storm-", "storm", extra_env=WATCHER_ENVIRONMENT, fast=False)
        results = []
        try:
            start = Stage("start", server, queue, started)

            def all_initialized() -> dict[str, float]:
                at = queue.initialized_at
                if len(at) < 2 * size:
                    return {}
                return {kind: max(t for a, t in at.items() if users[a][0] == kind) - started
                        for kind in ("oauth2", "password")}

            results.append(run_stage(start, dovecot, watcher, users, oauth_users, samples, all_initialized))
            print(f"start: {results[-1]}", flush=True)
            # Every token refreshed at the start expires TOKEN_LIFETIME_SECONDS after it was granted.
            last_grant = max(at for at, _ in server.token_calls) if server.token_calls else time.time()
            time.sleep(max(0.0, last_grant + TOKEN_LIFETIME_SECONDS + 1 - time.time()))
            kicked = time.time()
            reconnect = Stage("reconnect", server, queue, kicked)
            # The provider drops every oauth2 connection (a restart): each login needs a new token.
            dovecot.doveadm("kick", "o*@example.test")

            def all_logged_in_again() -> dict[str, float]:
                # accountInitialized is once per account: a login again shows as Dovecot's
                # introspection of the new token, the last step of an XOAUTH2 login.
                checks = server.introspections[reconnect.introspection_mark:]
                if len(checks) < size:
                    return {}
                return {"oauth2": max(at for at, _ in checks) - kicked}

            results.append(run_stage(reconnect, dovecot, watcher, users, oauth_users, samples, all_logged_in_again))
            print(f"reconnect: {results[-1]}", flush=True)
        finally:
            try:
                watcher.stop()
            finally:
                queue.stop()
                queue.delete()
        return results


def report(size: int, results: list[dict]) -> None:
    print(f"\noauth2 refresh storm: {size} oauth2 + {size} password accounts in one watcher "
          f"(tokens expire within one minute; refreshed ones live {TOKEN_LIFETIME_SECONDS} s)")
    print(f"{'stage':>9} | {'token calls':>11} {'/acct min':>9} {'max':>4} {'!=1':>4} | {'peak/s':>6} "
          f"{'median/s':>8} {'span s':>6} | {'authErr':>7} {'connErr':>7} | {'introspect':>10} {'p50':>5} {'p95':>5}"
          f" | {'connect oauth2':>14} {'password':>8}")
    for r in results:
        s = r["spread"]
        connect = r["connect_all"]
        password = f"{connect['password']:>7.1f}s" if "password" in connect else f"{'-':>8}"
        print(f"{r['stage']:>9} | {r['token_calls']:>11} {r['per_account_min']:>9} {r['per_account_max']:>4}"
              f" {r['accounts_not_one']:>4} | {s['peak']:>6} {s['median']:>8} {s['span_s']:>6.1f} |"
              f" {r['auth_errors']:>7} {r['connect_errors']:>7} | {r['introspections']:>10}"
              f" {r['introspection_ms'][0]:>5.0f} {r['introspection_ms'][1]:>5.0f} |"
              f" {connect.get('oauth2', 0):>13.1f}s {password}")
    print("\nchange latency during each stage (ms; floor = bare IDLE on the same INBOX, same push)")
    print(f"{'stage':>9} {'kind':>8} {'n':>3} | {'p50':>6} {'p95':>6} {'max':>6} | {'floor p50':>9} {'p95':>6}"
          f" | {'p50-floor':>9} {'p50/password':>12}")
    for r in results:
        floor = r["latency"]["floor"]
        password = r["latency"]["password"]
        for kind in ("oauth2", "password"):
            mine = r["latency"][kind]
            if mine is None or floor is None:
                print(f"{r['stage']:>9} {kind:>8} {0:>3} | no sample")
                continue
            ratio = f"{mine[0] / password[0]:.2f}x" if password else "-"
            print(f"{r['stage']:>9} {kind:>8} {r['samples'][kind]:>3} | {mine[0]:>6.0f} {mine[1]:>6.0f}"
                  f" {mine[2]:>6.0f} | {floor[0]:>9.0f} {floor[1]:>6.0f} | {mine[0] - floor[0]:>+9.0f} {ratio:>12}")
        if r["late"]:
            print(f"{r['stage']:>9}: {r['late']} samples later than {LATE_AFTER_SECONDS} s (not in the percentiles)")
    print("Goals: 1 token request per account per expiry, 0 authenticationError, oauth2 p50 <= floor + 100 ms."
          " Token calls are bounded by the watcher's connect rate, not by the test server.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000, help="oauth2 accounts (as many password ones beside)")
    parser.add_argument("--samples", type=int, default=15, help="latency samples per kind and stage")
    arguments = parser.parse_args()
    raise_open_file_limit(arguments.accounts * 6 + 1000)
    with raised_inotify_instances(arguments.accounts * 4 + 1000) as inotify_note:
        results = run(arguments.accounts, arguments.samples)
    print(f"inotify instances: {inotify_note}")
    report(arguments.accounts, results)


if __name__ == "__main__":
    main()
