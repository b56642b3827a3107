"""The watcher container's entry point, run as the Dockerfile runs it, and its health endpoint.

No Docker engine here: the image is reproduced as far as it matters for the entry point —
a fresh venv with only requirements.txt, a working directory holding only chalicelib/ (less
the API's Chalice handlers, which the .dockerignore leaves out) and workers/ (what the
Dockerfile copies), the Dockerfile's environment and command — against the session's moto.
What only the repository has (app.py, local/) is not in the image, and nothing in the image
may import it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.infrastructure.conftest import ROOT
from tests.support.aws import MOTO_ENDPOINT, REGION, TEST_ENVIRONMENT
from workers import health

DOCKERFILE = ROOT / "workers" / "Dockerfile"
DOCKERIGNORE = ROOT / "workers" / "Dockerfile.dockerignore"


def dockerfile_command() -> list[str]:
    line, = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(line.removeprefix("CMD "))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with requirements.txt and nothing else (the image's /opt/venv)."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                    "--requirement", str(ROOT / "requirements.txt")], check=True, timeout=600)
    return venv


def context_exclusions() -> list[str]:
    """Paths the build context leaves out of what it lets in (``chalicelib/api``), from the .dockerignore."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line.rstrip("/") for line in lines if line and not line.startswith(("#", "!", "*"))]


@pytest.fixture
def image_workdir(tmp_path: Path) -> Path:
    """What the Dockerfile copies into /app: chalicelib/ and workers/, less what the context excludes."""
    app = tmp_path / "app"
    for package in ("chalicelib", "workers"):
        shutil.copytree(ROOT / package, app / package, ignore=shutil.ignore_patterns("__pycache__"))
    for excluded in context_exclusions():
        shutil.rmtree(app / excluded)
    return app


def test_the_image_runs_the_container_entry_point():
    assert dockerfile_command() == ["python", "-m", "workers.container"]


# Run by the image's Python in /app: every module a file there imports, at the top or inside a
# function, must be found there (chalicelib/, workers/, the venv, the standard library).
UNRESOLVED_IMPORTS = r"""
import ast, importlib.util, pathlib, sys

def runtime_nodes(tree):
    # What runs: everything but the body of `if TYPE_CHECKING:` (imports only a type checker sees).
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
                stack.extend(child.orelse)
            else:
                stack.append(child)

missing = set()
for path in sorted(pathlib.Path(".").rglob("*.py")):
    for node in runtime_nodes(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        for name in names:
            if importlib.util.find_spec(name.split(".")[0]) is None:
                missing.add(f"{path}: {name}")
print("\n".join(sorted(missing)))
"""


def test_every_import_in_the_image_resolves_inside_the_image(runtime_venv, image_workdir):
    # Given the files the Dockerfile copies and the venv it builds (no app.py, no local/, no dev tools)
    # When each of their imports is looked up as the image's Python would
    found = subprocess.run([str(runtime_venv / "bin" / "python"), "-c", UNRESOLVED_IMPORTS], cwd=image_workdir,
                           capture_output=True, text=True, timeout=120, check=True)
    # Then none is missing: the image holds no module that needs what only the repository has
    assert found.stdout.strip() == ""


def test_entry_point_starts_from_a_clean_venv_answers_health_and_stops_on_sigterm(
        runtime_venv, image_workdir, aws_resources):
    # Given the image's environment (PATH to the venv, unbuffered, the health port) and moto
    port = free_port()
    environment = {"PATH": f"{runtime_venv / 'bin'}:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1",
                   "PYTHONUNBUFFERED": "1", "IMAPLESS_HEALTH_PORT": str(port), "HOME": str(image_workdir),
                   **{k: v for k, v in TEST_ENVIRONMENT.items() if k != "IMAPLESS_ALLOW_PRIVATE_NETWORKS"},
                   "AWS_ENDPOINT_URL": MOTO_ENDPOINT, "AWS_DEFAULT_REGION": REGION,
                   "IMAPLESS_WATCHER_SHARDS": "4", "IMAPLESS_WATCHER_HEARTBEAT_SECONDS": "0.5"}
    # When the Dockerfile's command starts in /app
    process = subprocess.Popen(dockerfile_command(), cwd=image_workdir, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    try:
        # Then the health endpoint answers live and ready, and the probe the image uses agrees
        wait_for(lambda: process.poll() is not None or health.probe("/health/ready", port=port), 60,
                 "the health endpoint to report ready")
        assert process.poll() is None, "".join(output)
        assert get(port, "/health/live")[0] == 200
        status, body = get(port, "/health/ready")
        assert status == 200 and body["checks"]["watcher"] == "ok"
        probe = subprocess.run(["python", "-m", "workers.health", "--probe"], cwd=image_workdir, env=environment,
                               timeout=30, check=False)
        assert probe.returncode == 0
        # ... and the watcher is at work: its heartbeat row is in the watchers table
        from chalicelib.store import leases

        wait_for(lambda: any(w.worker.startswith(f"w-{process.pid}-") for w in leases.live_workers("watcher")),
                 30, "the watcher's heartbeat")
        # When ECS stops the task
        process.send_signal(signal.SIGTERM)
        # Then it exits cleanly in time, having removed its heartbeat row
        assert process.wait(timeout=25) == 0, "".join(output)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not any(w.worker.startswith(f"w-{process.pid}-") for w in leases.live_workers("watcher"))
    assert "watcher stopped" in "".join(output)
    assert health.probe("/health/live", port=port, timeout=1) is False


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the crash is the point
def test_liveness_fails_when_a_thread_dies_or_a_loop_stops_beating():
    # Given a registry served on a free port, with a loop that must beat every 0.3 s
    clock = [100.0]
    registry = health.HealthRegistry(clock=lambda: clock[0])
    registry.expect_beats("supervisor", within_seconds=0.3)
    server = health.HealthServer(registry, port=0).start()
    try:
        assert get(server.port, "/health/live")[0] == 200
        # When the loop stops beating
        clock[0] += 1
        status, body = get(server.port, "/health/live")
        # Then liveness fails and names the loop
        assert status == 503 and body["checks"]["beat:supervisor"] == "failing"
        registry.beat("supervisor")
        assert get(server.port, "/health/live")[0] == 200
        # When a thread dies of an uncaught exception
        previous = threading.excepthook
        health.watch_thread_crashes(registry)
        try:
            crashing = threading.Thread(target=lambda: 1 / 0, name="idle-multiplexer")
            crashing.start()
            crashing.join()
        finally:
            threading.excepthook = previous
        status, body = get(server.port, "/health/live")
        assert status == 503 and "idle-multiplexer" in body["checks"]["threads"]
        assert get(server.port, "/nothing")[0] == 404
    finally:
        server.stop()


def test_probe_fails_when_nothing_listens():
    assert health.probe(port=free_port(), timeout=0.5) is False
    assert health.main(["--probe"]) in (0, 1)  # the CLI returns a status, never raises
