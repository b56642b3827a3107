# The two commands a developer needs: `make run` (whole system locally) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit explore fuzz typecheck lint bench mail-servers browser clean token package deploy watcher-image

$(STAMP): requirements.txt requirements-build.txt requirements-dev.txt
	@scripts/ensure-venv.sh "$(PYTHON)" "$(VENV)"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

## Start the whole system locally: embedded AWS emulation, REST API, watcher, webhook dispatcher.
run: $(STAMP)
	$(PY) -m local.run

## Install what the tests need (Python packages, Dovecot, Postfix, Cyrus, Courier, Chromium), lint and type-check, and run every test.
test: $(STAMP) lint mail-servers browser
	$(PY) -m pytest

## Only the tests that need no mail server.
test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

## Property tests with random seeds instead of the fixed ones `make test` uses.
explore: $(STAMP)
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest tests/unit -q

## Fuzz the API longer than the gate in `make test` does: a new seed each run (printed), more examples.
## Replay a run: make fuzz FUZZ_SEED=<seed> FUZZ_EXAMPLES=<n>
FUZZ_SEED ?= random
FUZZ_EXAMPLES ?= 200
FUZZ_TIMEOUT ?= 3600
fuzz: $(STAMP) mail-servers
	IMAPLESS_FUZZ_SEED=$(FUZZ_SEED) IMAPLESS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) IMAPLESS_FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) \
		$(PY) -m pytest tests/e2e/test_api_fuzzing.py

mail-servers:
	@scripts/install-mail-servers.sh

## Debian's chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@scripts/install-browser.sh

## Static types (mypy; what it checks is in pyproject.toml).
typecheck: $(STAMP)
	$(PY) -m mypy

## ruff (fast, so first), then mypy: a finding of either fails `make test` before any test runs.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: $(STAMP) mail-servers
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache dist

## Issue an API token for the system `make run` started: make token DESCRIPTION="my script"
token: $(STAMP)
	@$(PY) -m local.token --description "$(or $(DESCRIPTION),local token)"

# -- deploy to AWS (docs/deploy.md) --
STAGE ?= prod
STACK_NAME ?= imapless-$(STAGE)
AWS_REGION ?= $(or $(AWS_DEFAULT_REGION),us-east-1)
WATCHER_REPOSITORY ?= imapless-watcher
WATCHER_TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo latest)

## The deployable stack in dist/: chalice package + template.yaml, finalized, checked, cfn-linted.
package: $(STAMP)
	AWS_DEFAULT_REGION=$(AWS_REGION) sh deploy/package.sh dist

## Build and push the watcher image to ECR (needs Docker and the AWS CLI).
watcher-image:
	sh deploy/watcher-image.sh "$(WATCHER_REPOSITORY)" "$(WATCHER_TAG)" "$(AWS_REGION)"

## Upload the code and deploy the stack: make deploy ARTIFACT_BUCKET=... VPC_ID=... SUBNETS=a,b [ALARM_EMAIL=...]
deploy: package
	sh deploy/deploy.sh "$(STACK_NAME)" "$(AWS_REGION)" "$(ARTIFACT_BUCKET)" "$(VPC_ID)" "$(SUBNETS)" \
		"$(WATCHER_REPOSITORY)" "$(WATCHER_TAG)" "$(ALARM_EMAIL)" "$(PARAMETERS)"
