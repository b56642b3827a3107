"""Fixtures of the infrastructure tests: the packaged stack (built once per session) and the code graph."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy.aws_actions import AwsUsageAnalyzer
from deploy.codegraph import CodeGraph
from local.resources import load_template

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PackagedStack:
    directory: Path
    template: dict[str, Any]
    output: str
    seconds: float


@pytest.fixture(scope="session")
def packaged_stack(tmp_path_factory: pytest.TempPathFactory) -> PackagedStack:
    """`deploy/package.sh` exactly as `make package` runs it (chalice package, finalize, invariants, cfn-lint)."""
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    result = subprocess.run(["sh", "deploy/package.sh", str(out)], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"make package failed:\n{output[-4000:]}"
    return PackagedStack(out, load_template(out / "sam.yaml"), output, time.monotonic() - started)


@pytest.fixture(scope="session")
def analyzer() -> AwsUsageAnalyzer:
    return AwsUsageAnalyzer(CodeGraph(ROOT))
