"""The code bundle step of ``make package``: deployment.zip trimmed to what runs, with bytecode.

``chalice package`` zips requirements.txt's wheels (built for Lambda's platform), the two
files of Chalice's runtime (chalice/__init__.py, chalice/app.py), app.py and chalicelib/.
This step rewrites that zip in place::

    deployment.zip (chalice)                          deployment.zip (deployed)
      botocore/data/<455 services>/  18.9 MB    ->      botocore/data/<services we call>/
      swagger_ui_bundle/vendor/*     12.3 MB    ->      the 3 files /docs serves (1.7 MB)
      *.py                                      ->      *.py, and for every module the functions
                                                        import: __pycache__/*.cpython-3XX.pyc
                                                        (unchecked-hash, paths under /var/task)

    extract -> drop models -> deploy/bundle_probe.py imports the code from the tree alone
            -> compile what it imported -> zip (sorted, fixed dates)

Why drop botocore's other service models: we pin our own botocore (the one our code,
pynamodb and the urllib3 pin are tested with) instead of the copy the Lambda runtime ships
and updates on its own schedule, but 95% of its size is the JSON models of services no
function calls. The services kept are those the code creates clients for (read from the
source by deploy/aws_actions.py, so a new ``boto3.client("sns")`` is kept without editing
this file) plus :data:`LIBRARY_SERVICES`, the clients libraries create on their own.

Why only three files of Swagger UI: the package ships every build of it (ES modules,
standalone preset, source maps); /docs serves the names in
``chalicelib.services.docs_assets.ASSETS``, read from the same module.

Why bytecode: without it every cold start compiles each imported module (Lambda's
/var/task is read-only, so nothing is cached between sandboxes). A .pyc is specific to a
Python minor version: it is compiled by the interpreter running this step, which must be
the runtime the template names (Chalice derives that runtime from the same interpreter, so
a mismatch means a broken setup, and this step refuses it). ``unchecked-hash`` pycs are
used without comparing the source's mtime or hash: zip entries carry a fixed 1980 date.
Only modules the probe saw imported get bytecode (app.py, all of chalicelib, everything any
of it imports, even inside a function, and what those import in turn): bytecode for the
rest of the libraries (Powertools' utilities we do not use, pydantic.v1, ...) would add
~7.6 MB that no function reads. A module imported some other way still works: it is
compiled in memory when imported, as every module is today.

Invariants: every entry of the input zip is in the output with the same bytes, except
the files dropped; a service some code needs is never dropped (a missing model would fail
at run time with UnknownServiceError); a module the code imports that the bundle lacks, a
docs asset it cannot read, or an app that does not import from the bundle alone, fails the
package.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.finalize_template import functions, load_template

ROOT = Path(__file__).resolve().parents[1]
LAMBDA_TASK_ROOT = "/var/task"  # where Lambda unpacks the bundle: the source paths tracebacks show
BOTOCORE_DATA = "botocore/data/"
SWAGGER_UI_VENDOR = "swagger_ui_bundle/vendor/"
# Clients created by libraries, not by our code (which deploy/aws_actions.py reads):
LIBRARY_SERVICES = frozenset({
    "dynamodb",  # pynamodb models and Powertools' idempotency persistence layer
    "xray",  # aws_xray_sdk's sampling-rules poller (the Tracer)
})
PROBE = Path(__file__).with_name("bundle_probe.py")
# The probe imports the app as Lambda would, with the variables the template sets at least
# named; a region for the clients it creates. Credentials are never needed: nothing is called.
PROBE_ENVIRONMENT = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # what chalice writes: the bundle's hash depends on content only
NEW_ENTRY_MODE = 0o644 << 16


class BundleError(RuntimeError):
    """The bundle cannot be built as the template requires."""


def code_services(root: Path = ROOT) -> set[str]:
    """The AWS services the code of ``root`` creates clients for."""
    from deploy.aws_actions import AwsUsageAnalyzer
    from deploy.codegraph import CodeGraph

    return set().union(*AwsUsageAnalyzer(CodeGraph(root)).factories.values())


def template_runtime(template: dict[str, Any]) -> str:
    """The one Python runtime of the template's functions (``python3.11``)."""
    runtimes = {(template["Resources"][f].get("Properties") or {}).get("Runtime")
                or template.get("Globals", {}).get("Function", {}).get("Runtime") for f in functions(template)}
    if len(runtimes) != 1 or not str(next(iter(runtimes))).startswith("python3."):
        raise BundleError(f"expected one python3.x runtime for every function, found {sorted(map(str, runtimes))}")
    return str(runtimes.pop())


def check_interpreter(runtime: str) -> None:
    interpreter = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if interpreter != runtime:
        raise BundleError(f"the template's runtime is {runtime} but bytecode would be compiled by {interpreter}: "
                          f"run `make package` with a {runtime} venv")


def served_swagger_ui_files() -> frozenset[str]:
    """The Swagger UI files /docs serves (by file name)."""
    from chalicelib.services.docs_assets import ASSETS

    return frozenset(asset.name for asset in ASSETS.values() if asset.in_swagger_ui)


def dropped(name: str, services: Iterable[str], swagger_ui_files: Iterable[str] = ()) -> bool:
    """True for a botocore model no kept service needs, or a Swagger UI file /docs does not serve."""
    if name.startswith(SWAGGER_UI_VENDOR):
        return name.rpartition("/")[2] not in set(swagger_ui_files)
    if not name.startswith(BOTOCORE_DATA):
        return False
    parts = name[len(BOTOCORE_DATA):].split("/")
    return len(parts) > 1 and parts[0] not in set(services)  # files directly in data/ are shared


def build(bundle: Path, runtime: str, services: Iterable[str], swagger_ui_files: Iterable[str]) -> Probe:
    """Rewrite ``bundle``: drop unneeded service models and Swagger UI files, add bytecode of what is imported."""
    check_interpreter(runtime)
    kept = set(services)
    served = set(swagger_ui_files)
    with tempfile.TemporaryDirectory(prefix="bundle-") as scratch:
        tree = Path(scratch) / "task"
        modes: dict[str, int] = {}
        with zipfile.ZipFile(bundle) as source:
            for info in source.infolist():
                if info.is_dir() or dropped(info.filename, kept, served):
                    continue
                modes[info.filename] = info.external_attr
                source.extract(info, tree)
        probe = run_probe(tree, kept)
        if probe.failed:
            raise BundleError(f"the bundle lacks modules the code imports: {probe.failed}")
        for name in probe.sources:
            source_path = tree / name
            py_compile.compile(str(source_path), cfile=importlib.util.cache_from_source(str(source_path)),
                               dfile=f"{LAMBDA_TASK_ROOT}/{name}", doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        rebuilt = bundle.with_suffix(".tmp")
        with zipfile.ZipFile(rebuilt, "w", compression=zipfile.ZIP_DEFLATED) as target:
            for path in sorted(p for p in tree.rglob("*") if p.is_file()):
                name = path.relative_to(tree).as_posix()
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.external_attr = modes.get(name, NEW_ENTRY_MODE)
                info.compress_type = zipfile.ZIP_DEFLATED
                target.writestr(info, path.read_bytes())
        shutil.move(rebuilt, bundle)
    return probe


@dataclass(frozen=True)
class Probe:
    """What deploy/bundle_probe.py saw in an unzipped bundle."""

    loaded: frozenset[str]  # bundle-relative paths of every file opened or imported
    modules: frozenset[str]
    without_bytecode: frozenset[str]  # modules imported from source: no usable .pyc
    failed: dict[str, str]  # module -> ImportError text
    sources: tuple[str, ...]  # bundle-relative .py of every imported module


def run_probe(tree: Path, services: Iterable[str], python: str = sys.executable) -> Probe:
    """Import the functions' code from ``tree`` alone (``-I -S``: no site-packages) and report."""
    result = subprocess.run([python, "-I", "-S", str(PROBE), str(tree), *sorted(services)], capture_output=True,
                            text=True, timeout=300, check=False, env={"PATH": os.environ.get("PATH", ""),
                                                                      **PROBE_ENVIRONMENT})
    if result.returncode != 0:
        raise BundleError(f"the packaged app does not import from the bundle alone:\n{result.stderr[-4000:]}")
    report = json.loads(result.stdout)
    loaded = frozenset(report["loaded"])
    return Probe(loaded, frozenset(report["modules"]), frozenset(report["without_bytecode"]), report["failed"],
                 tuple(sorted(name for name in loaded if name.endswith(".py"))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.bundle", description=__doc__.splitlines()[0])
    parser.add_argument("package_dir", type=Path, help="chalice package's output (sam.yaml, deployment.zip)")
    arguments = parser.parse_args(argv)
    template = load_template(arguments.package_dir / "sam.yaml")
    services = code_services() | LIBRARY_SERVICES
    bundle = arguments.package_dir / "deployment.zip"
    try:
        probe = build(bundle, template_runtime(template), services, served_swagger_ui_files())
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(bundle) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    print(f"bundle: {bundle.stat().st_size / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped; "
          f"botocore models of {', '.join(sorted(services))}; {len(probe.sources)} modules compiled for "
          f"{template_runtime(template)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
