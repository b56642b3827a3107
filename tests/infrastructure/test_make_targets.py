"""What ``make test`` (CI's command) runs, read from make's dry run: nothing is executed."""

from __future__ import annotations

import subprocess

from tests.infrastructure.conftest import ROOT


def planned_commands(target: str) -> list[str]:
    dry_run = subprocess.run(["make", "--dry-run", "--always-make", target], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, check=True)
    return dry_run.stdout.splitlines()


def position(commands: list[str], tool: str) -> int:
    found = [index for index, command in enumerate(commands) if f"-m {tool}" in command.split("#")[0]]
    assert found, f"make test does not run {tool}:\n" + "\n".join(commands)
    return found[0]


def test_make_test_lints_and_type_checks_before_any_test_runs():
    # Given the commands `make test` would run, in order
    commands = planned_commands("test")
    # Then ruff checks the whole tree and mypy runs, both before pytest starts
    assert any(command.endswith("-m ruff check .") for command in commands)
    assert position(commands, "ruff") < position(commands, "pytest")
    assert position(commands, "mypy") < position(commands, "pytest")
