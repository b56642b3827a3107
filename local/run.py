"""The supervisor behind ``make run``: the whole system on one machine (``python -m local.run``).

Process layout::

    python -m local.run  (this process)
    +-------------------------------------------------------------------------+
    | main thread      start-up, signals, watches the children                |
    | moto thread      AWS emulation on 127.0.0.1:$IMAPLESS_MOTO_PORT (4566)  |
    | snapshot thread  DynamoDB -> $IMAPLESS_DATA_DIR/dynamodb.json           |
    +-----------+---------------------------+-----------------------+---------+
                | each child: own process group, started through local.child
                | (dies with the supervisor), AWS_ENDPOINT_URL -> moto
                v                           v                       v
      local.api_server :$PORT      python -m workers.watcher   python -m local.dispatcher
      REST API, /health, /docs     mailbox changes -> events   events -> webhooks
      (chalice local, answering unknown paths and methods as the deployed API does)

Start-up, in order (a failing step stops what was started and exits 1):

1. read ``PORT`` (3000), ``IMAPLESS_MOTO_PORT`` (4566), ``IMAPLESS_DATA_DIR`` (./.data),
   ``API_TOKEN`` (optional); check both ports are free;
2. fix the environment the children get (and this process, see
   :func:`build_child_environment`): moto endpoint, fake credentials, local key provider;
3. start moto, create the resources of ``template.yaml``, restore the DynamoDB snapshot
   (the template owns table definitions, the snapshot their contents);
4. ensure the admin token (``API_TOKEN``, else ``$IMAPLESS_DATA_DIR/admin-token``, else a
   new one saved there) and register it in the tokens table;
5. spawn the API, the watcher and the dispatcher; wait until ``GET /health`` answers
   (any HTTP status: the server is up); print the banner.

Then it supervises: a child that exits on its own is logged and takes everything down
(exit 1), since a half-running system misleads more than a stopped one. SIGINT, SIGTERM
and SIGHUP stop everything cleanly (exit 0): SIGTERM to each child's process group, SIGKILL
after ``CHILD_STOP_GRACE_SECONDS`` (or at once on a second signal), a final snapshot save,
moto stopped.

Invariants and failure modes:

- Children live in their own process groups, so a Ctrl-C reaches only this process and
  the shutdown order above holds. If this process is SIGKILLed, Linux sends each child
  SIGTERM (see :mod:`local.child`) and at most the last snapshot interval (~1 s) of
  DynamoDB writes is lost.
- Signal handlers only record the request; start-up checks it between steps, so a Ctrl-C
  during start-up takes effect at the next step (each well under a second) and whatever
  was already started is stopped the same way.
- Port conflicts (another ``make run``, LocalStack on 4566) are reported before anything
  starts, instead of a child failing or the health check reaching someone else's server.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from local.datadir import resolve_data_dir, write_private_file
from local.emulator import DEFAULT_MOTO_PORT, AwsEmulator, PortInUseError, SnapshotError, check_port_free
from local.resources import TemplateError, create_resources, load_template, plan_resources

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
STACK_NAME = "imapless"
API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 3000
DEFAULT_REGION = "us-east-1"
ADMIN_TOKEN_FILE_NAME = "admin-token"  # noqa: S105 - a file name, not a secret
ADMIN_TOKEN_BYTES = 32
API_START_TIMEOUT_SECONDS = 60.0
CHILD_STOP_GRACE_SECONDS = 5.0
SUPERVISE_POLL_SECONDS = 0.2
# Credentials and settings that only make sense against real AWS; locally they would
# either be sent to moto for nothing or win over the generic endpoint set below.
AWS_VARIABLES_REMOVED = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                         "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")

logger = logging.getLogger("local.run")


class StartupError(RuntimeError):
    """A start-up step failed; the message says which and what to do."""


class ChildExitedError(RuntimeError):
    """A supervised process exited although nobody asked it to."""


class _ShutdownRequested(Exception):  # noqa: N818 - control flow, like KeyboardInterrupt
    """SIGINT/SIGTERM/SIGHUP arrived; raised by this module's own checks, never by a handler."""


@dataclass(frozen=True)
class RunConfig:
    """What the runner reads from its environment."""

    api_port: int
    moto_port: int
    data_dir: Path
    region: str
    api_token: str | None

    @property
    def api_url(self) -> str:
        return f"http://{API_HOST}:{self.api_port}"

    @property
    def moto_endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"


def read_config(environ: Mapping[str, str] = os.environ) -> RunConfig:
    """The runner's settings from ``environ`` (see the module docstring for the defaults)."""
    try:
        api_port = int(environ.get("PORT") or DEFAULT_API_PORT)
        moto_port = int(environ.get("IMAPLESS_MOTO_PORT") or DEFAULT_MOTO_PORT)
    except ValueError as error:
        raise StartupError(f"PORT and IMAPLESS_MOTO_PORT must be port numbers ({error})") from error
    if api_port == moto_port:
        raise StartupError(f"PORT and IMAPLESS_MOTO_PORT are both {api_port}")
    return RunConfig(
        api_port=api_port,
        moto_port=moto_port,
        data_dir=resolve_data_dir(environ),
        # Same precedence as chalicelib.settings, so the app looks in the region the tables are in.
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        api_token=(environ.get("API_TOKEN") or "").strip() or None,
    )


def template_queue_names(region: str) -> list[str]:
    """Short names (without the stack prefix) of the SQS queues ``template.yaml`` defines."""
    planned = plan_resources(load_template(TEMPLATE_PATH), STACK_NAME, region=region, endpoint_url="http://unused")
    prefix = f"{STACK_NAME}-"
    return [r.name.removeprefix(prefix) for r in planned if r.resource_type == "AWS::SQS::Queue"]


def build_child_environment(base: Mapping[str, str], config: RunConfig) -> dict[str, str]:
    """The environment of every process of the local system: ``base`` pointed at moto."""
    env = {key: value for key, value in base.items()
           if key not in AWS_VARIABLES_REMOVED and not key.startswith("AWS_ENDPOINT_URL_")}
    no_proxy = ",".join(part for part in (base.get("NO_PROXY") or base.get("no_proxy"), "127.0.0.1,localhost")
                        if part)
    env.update({
        "AWS_ENDPOINT_URL": config.moto_endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": config.region,
        "AWS_REGION": config.region,
        # moto would give KMS keys new ids on every start; a key file survives restarts.
        "IMAPLESS_KEY_PROVIDER": "local",
        "IMAPLESS_DATA_DIR": str(config.data_dir),
        "IMAPLESS_RESOURCE_PREFIX": f"{STACK_NAME}-",
        # Local mail servers (Dovecot on 127.0.0.1, a LAN box) are the common case here.
        "IMAPLESS_ALLOW_PRIVATE_NETWORKS": base.get("IMAPLESS_ALLOW_PRIVATE_NETWORKS") or "true",
        "PYTHONUNBUFFERED": "1",  # children's logs appear as they happen, even through a pipe
        # CloudWatch EMF metric lines are for AWS; locally they would drown the logs.
        "POWERTOOLS_METRICS_DISABLED": base.get("POWERTOOLS_METRICS_DISABLED") or "true",
        # GET /v1/stats reports the depth of these queues (on AWS the packaged template sets it).
        "IMAPLESS_QUEUES": ",".join(template_queue_names(config.region)),
        # An HTTP(S)_PROXY of the developer must not intercept calls to moto and the API.
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    })
    return env


def ensure_admin_token(data_dir: Path, configured: str | None) -> tuple[str, str]:
    """The admin token and where it comes from: ``API_TOKEN``, else the token file (created once)."""
    if configured:
        return configured, "API_TOKEN"
    path = data_dir / ADMIN_TOKEN_FILE_NAME
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_hex(ADMIN_TOKEN_BYTES)
        write_private_file(path, f"{token}\n".encode("ascii"))
    return token, str(path)


def child_commands(config: RunConfig) -> dict[str, list[str]]:
    """The supervised processes by name, as argument lists."""
    return {
        "api": [sys.executable, "-m", "local.api_server", "--host", API_HOST, "--port", str(config.api_port)],
        "watcher": [sys.executable, "-m", "workers.watcher"],
        "dispatcher": [sys.executable, "-m", "local.dispatcher"],
    }


class _StopSignals:
    """Records SIGINT/SIGTERM/SIGHUP; a signal during shutdown asks to hurry (SIGKILL)."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.hurry = threading.Event()
        self.received: signal.Signals | None = None

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.requested.is_set():
            self.hurry.set()
            return
        self.received = signal.Signals(signum)
        self.requested.set()

    def check(self) -> None:
        if self.requested.is_set():
            raise _ShutdownRequested


def _check_ports_free(config: RunConfig) -> None:
    for port, variable in ((config.moto_port, "IMAPLESS_MOTO_PORT"), (config.api_port, "PORT")):
        try:
            check_port_free(port)
        except PortInUseError as error:
            raise StartupError(f"{error}; is another `make run` (or LocalStack) running? "
                               f"Set {variable} to use another port") from error


def _spawn(name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    wrapped = [sys.executable, "-m", "local.child", str(os.getpid()), "--", *argv]
    process = subprocess.Popen(wrapped, cwd=PROJECT_ROOT, env=dict(env), stdin=subprocess.DEVNULL, process_group=0)
    logger.info("started %s (pid %d)", name, process.pid)
    return process


def _check_children(children: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for name, process in children.items():
        code = process.poll()
        if code is not None:
            raise ChildExitedError(f"{name} (pid {process.pid}) exited unexpectedly with status {code}")


def _wait_for_api(config: RunConfig, children: Mapping[str, subprocess.Popen[bytes]],
                  stop: _StopSignals) -> None:
    # No proxies: the developer's HTTP_PROXY must not answer for our own server.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + API_START_TIMEOUT_SECONDS
    while True:
        stop.check()
        _check_children(children)
        try:
            opener.open(f"{config.api_url}/health", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up; /health may report a failing check
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise StartupError(f"the API did not answer on {config.api_url}/health "
                               f"within {API_START_TIMEOUT_SECONDS:.0f} s")
        stop.requested.wait(0.05)


def _stop_children(children: Mapping[str, subprocess.Popen[bytes]], stop: _StopSignals) -> None:
    alive = {name: process for name, process in children.items() if process.poll() is None}
    for process in alive.values():
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_GRACE_SECONDS
    while any(process.poll() is None for process in alive.values()):
        if time.monotonic() > deadline or stop.hurry.is_set():
            break
        time.sleep(0.05)
    for name, process in alive.items():
        if process.poll() is None:
            logger.warning("%s (pid %d) did not stop after SIGTERM; killing it", name, process.pid)
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    try:
        os.killpg(process.pid, signum)  # the child leads its own group (process_group=0)
    except ProcessLookupError:
        pass


def _register_admin_token(token: str) -> None:
    # Imported only now: pynamodb models read the endpoint and table names at import time,
    # so this must come after the environment points at moto.
    from chalicelib.services.tokens import register_token

    try:
        register_token(token, description="local admin", scopes=["*"])
    except ValueError as error:
        raise StartupError(f"cannot register the admin token: {error}") from error


def _print_banner(config: RunConfig, token: str, token_source: str, startup_seconds: float) -> None:
    lines = [
        "",
        f"imapless is running (ready in {startup_seconds:.1f} s)",
        f"  API          {config.api_url}",
        f"  API docs     {config.api_url}/docs",
        f"  console      {config.api_url}/admin   (sign in with the admin token)",
        f"  admin token  {token}   (from {token_source})",
        f"  data dir     {config.data_dir}",
        f"  AWS (moto)   {config.moto_endpoint_url}",
        "Press Ctrl-C to stop.",
        "",
    ]
    print("\n".join(lines), flush=True)


def _configure_logging() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("local")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def main() -> int:
    """Run the local system until a signal (exit 0) or a failure (exit 1)."""
    started = time.monotonic()
    _configure_logging()
    stop = _StopSignals()
    stop.install()
    children: dict[str, subprocess.Popen[bytes]] = {}
    emulator: AwsEmulator | None = None
    exit_code = 0
    try:
        config = read_config()
        _check_ports_free(config)
        env = build_child_environment(os.environ, config)
        os.environ.clear()
        os.environ.update(env)  # this process's own AWS calls go to moto as well

        emulator = AwsEmulator(config.data_dir, port=config.moto_port, region=config.region)
        emulator.start()
        create_resources(TEMPLATE_PATH, STACK_NAME, endpoint_url=emulator.endpoint_url, region=config.region)
        stop.check()
        restored = emulator.restore()
        logger.info("AWS emulation on %s; %d DynamoDB items restored from %s",
                    emulator.endpoint_url, restored, emulator.snapshot_path)

        token, token_source = ensure_admin_token(config.data_dir, config.api_token)
        _register_admin_token(token)
        for name, argv in child_commands(config).items():
            stop.check()
            children[name] = _spawn(name, argv, env)
        _wait_for_api(config, children, stop)
        _print_banner(config, token, token_source, time.monotonic() - started)

        while not stop.requested.wait(SUPERVISE_POLL_SECONDS):
            _check_children(children)
        raise _ShutdownRequested
    except _ShutdownRequested:
        logger.info("stopping (%s)", stop.received.name if stop.received else "signal")
    except ChildExitedError as error:
        logger.error("%s; stopping everything", error)
        exit_code = 1
    except (StartupError, SnapshotError, TemplateError) as error:
        logger.error("cannot start: %s", error)
        exit_code = 1
    finally:
        stop.requested.set()  # from here on, a signal means "hurry"
        _stop_children(children, stop)
        if emulator is not None:
            try:
                emulator.stop()
            except Exception:
                logger.exception("the final DynamoDB snapshot could not be saved")
                exit_code = 1
    if exit_code == 0:
        logger.info("stopped")
    return exit_code


if __name__ == "__main__":
    raise SystemExit(main())
