"""The code bundle `make package` writes (deployment.zip): what is in it, what it weighs, that it runs alone.

The packaged tests read the real output of deploy/package.sh; the others check the pure
parts of deploy/bundle.py on small inputs.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest

from chalicelib.services.docs_assets import SWAGGER_UI_VERSION
from deploy import bundle
from deploy.bundle import BundleError
from tests.infrastructure.conftest import PackagedStack

# Beyond what the functions import (their modules, source and bytecode, and the files those
# read: botocore models, ...), the bundle may carry at most this much.
UNUSED_BYTES_BUDGET = 15 * 1024 * 1024
# Distributions only chalice's command line needs (and what they pull in); none is imported at run time.
COMMAND_LINE_ONLY = ("pip", "setuptools", "_distutils_hack", "wheel", "yaml", "_yaml", "click", "inquirer",
                     "wcwidth", "blessed", "readchar", "editor", "jinxed", "runs", "xmod", "packaging")
PYC_UNCHECKED_HASH_FLAGS = 0b01  # PEP 552: hash-based, check_source off


@pytest.fixture(scope="module")
def unzipped_bundle(packaged_stack: PackagedStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(packaged_stack.directory / "deployment.zip") as archive:
        archive.extractall(tree)
    return tree


@pytest.fixture(scope="module")
def probe(unzipped_bundle: Path) -> bundle.Probe:
    return bundle.run_probe(unzipped_bundle, bundle.code_services() | bundle.LIBRARY_SERVICES)


def top_level_names(packaged_stack: PackagedStack) -> set[str]:
    with zipfile.ZipFile(packaged_stack.directory / "deployment.zip") as archive:
        return {name.split("/")[0] for name in archive.namelist()}


def test_no_distribution_only_the_chalice_command_line_needs_is_in_the_bundle(packaged_stack):
    names = top_level_names(packaged_stack)
    distributions = {name.split("-")[0].lower() for name in names if name.endswith(".dist-info")}
    assert not names & set(COMMAND_LINE_ONLY)
    assert not distributions & {*COMMAND_LINE_ONLY, "chalice", "pyyaml"}


def test_the_bundle_carries_chalices_runtime_and_nothing_else_of_chalice(packaged_stack):
    with zipfile.ZipFile(packaged_stack.directory / "deployment.zip") as archive:
        chalice_files = {name for name in archive.namelist()
                         if name.startswith("chalice/") and "/__pycache__/" not in name}
    assert chalice_files == {"chalice/__init__.py", "chalice/app.py"}


def test_the_packaged_app_imports_from_the_bundle_alone_with_every_module_it_names(probe):
    # Given only the standard library and the unzipped bundle (python -I -S, no site-packages)
    # Then app.py, every chalicelib module and everything they import load, chalice from the bundle
    assert probe.failed == {}
    assert {"app", "chalice", "chalicelib.settings", "pynamodb.models", "boto3"} <= probe.modules
    assert "chalice/__init__.py" in probe.loaded


def test_the_bundle_beyond_what_the_functions_import_stays_within_budget(unzipped_bundle, probe):
    total = sum(path.stat().st_size for path in unzipped_bundle.rglob("*") if path.is_file())
    used = sum((unzipped_bundle / name).stat().st_size for name in probe.loaded)
    assert total - used <= UNUSED_BYTES_BUDGET, f"{(total - used) / 1e6:.1f} MB unused of {total / 1e6:.1f} MB"


def test_of_swagger_ui_only_the_files_docs_serves_are_kept(packaged_stack, probe):
    with zipfile.ZipFile(packaged_stack.directory / "deployment.zip") as archive:
        kept = {name.rpartition("/")[2] for name in archive.namelist() if name.startswith(bundle.SWAGGER_UI_VENDOR)}
    assert kept == bundle.served_swagger_ui_files() == {"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"}
    # and the probe read each of them from the bundle (it fails on a missing one)
    assert f"{bundle.SWAGGER_UI_VENDOR}swagger-ui-{SWAGGER_UI_VERSION}/swagger-ui-bundle.js" in probe.loaded


def test_only_the_botocore_models_of_services_the_code_calls_are_kept(packaged_stack):
    with zipfile.ZipFile(packaged_stack.directory / "deployment.zip") as archive:
        services = {name.split("/")[2] for name in archive.namelist()
                    if name.startswith(bundle.BOTOCORE_DATA) and name.count("/") > 2}
    assert services == bundle.code_services() | bundle.LIBRARY_SERVICES
    assert {"dynamodb", "sqs", "kms"} <= services


def test_every_module_the_functions_import_has_unchecked_hash_bytecode_for_the_runtime(
        packaged_stack, unzipped_bundle, probe):
    # Given the runtime the template names, which the test's interpreter matches (as `make package`'s does)
    runtime = bundle.template_runtime(packaged_stack.template)
    assert runtime == f"python{sys.version_info.major}.{sys.version_info.minor}"
    # Then no imported module was compiled from source on the way
    assert probe.without_bytecode == frozenset()
    compiled = [name for name in probe.loaded if name.endswith(".pyc")]
    assert len(compiled) > 500
    for name in compiled:
        header = (unzipped_bundle / name).read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER, name
        assert int.from_bytes(header[4:8], "little") == PYC_UNCHECKED_HASH_FLAGS, name
    # And tracebacks name the files where Lambda puts them
    code = (unzipped_bundle / "chalicelib" / "__pycache__" / f"settings.{sys.implementation.cache_tag}.pyc")
    assert b"/var/task/chalicelib/settings.py" in code.read_bytes()


# -- the pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "is_dropped"), [
    ("swagger_ui_bundle/vendor/swagger-ui-5.31.0/swagger-ui-bundle.js", False),
    ("swagger_ui_bundle/vendor/swagger-ui-5.31.0/swagger-ui-bundle.js.map", True),
    ("swagger_ui_bundle/vendor/swagger-ui-5.31.0/swagger-ui-es-bundle.js", True),
    ("swagger_ui_bundle/__init__.py", False),
    ("botocore/data/ec2/2016-11-15/service-2.json.gz", True),
    ("botocore/data/sqs/2012-11-05/service-2.json.gz", False),
    ("botocore/data/endpoints.json", False),  # shared by every client
    ("botocore/data/_retry.json", False),
    ("botocore/client.py", False),
    ("boto3/data/ec2/2016-11-15/resources-1.json", False),  # boto3's own data is small and not a model
])
def test_only_other_services_models_and_swagger_ui_files_docs_does_not_serve_are_dropped(name, is_dropped):
    assert bundle.dropped(name, {"sqs", "dynamodb"}, {"swagger-ui-bundle.js"}) is is_dropped


def _template(*runtimes: str | None) -> dict:
    return {"Globals": {"Function": {"Runtime": "python3.11"}}, "Resources": {
        f"F{index}": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": runtime} if runtime else {}}
        for index, runtime in enumerate(runtimes)}}


def test_the_runtime_is_read_from_the_functions_or_the_globals():
    assert bundle.template_runtime(_template("python3.11", None)) == "python3.11"


def test_functions_on_different_runtimes_are_refused():
    with pytest.raises(BundleError, match=r"one python3\.x runtime"):
        bundle.template_runtime(_template("python3.11", "python3.12"))


def test_bytecode_for_another_python_than_the_runtime_is_refused():
    with pytest.raises(BundleError, match=r"python3\.99"):
        bundle.check_interpreter("python3.99")
