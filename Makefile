# The front door. `make run` and `make test` bootstrap everything they need on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.13 matches the Lambda runtime. pyenv may hold one without putting it on PATH; else fall back to python3
# (3.11 and 3.12 work too; the layer's bytecode is then compiled by a 3.13 found elsewhere, or left out loudly).
PYTHON ?= $(shell for candidate in python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3; do \
	if "$$candidate" -c 'import sys' >/dev/null 2>&1; then \
	  if "$$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null || [ "$$candidate" = python3 ]; then \
	    command -v "$$candidate" 2>/dev/null || echo "$$candidate"; break; fi; fi; done)
PYTHON_BIN_DIR := $(dir $(PYTHON))
VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
export SAM_CLI_TELEMETRY := 0
# template.yaml repeats resources with Fn::ForEach: SAM CLI expands AWS::LanguageExtensions itself before validate and build.
export SAM_CLI_ENABLE_LANGUAGE_EXTENSIONS := 1
export AWS_DEFAULT_REGION ?= eu-west-1
# sam validate/build need a region and, for validate, credentials of any shape: nothing here calls AWS.
SAM_ENV := PATH="$(PYTHON_BIN_DIR):$$PATH" AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-local}
# sam build runs layers/common/Makefile: pip from our venv (a bare python3 may have no pip), and bytecode compiled by
# the runtime's Python, which it looks for itself (or BYTECODE_PYTHON); MAKEFLAGS= keeps this make's PYTHON= out of it.
LAYER_ENV := MAKEFLAGS= PYTHON="$(abspath $(PY))" $(if $(BYTECODE_PYTHON),BYTECODE_PYTHON="$(BYTECODE_PYTHON)")

help: ## Show the targets
	@grep -E '^[a-zA-Z_%-]+:.*?## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt layers/common/requirements.txt pyproject.toml
	@echo "==> creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .  # the smsgw command-line client
	touch $@

# Tools whose own pins would fight ours get a venv each: the SAM CLI pins boto3 and click (and quietly
# downgrades itself on a clash), checkov brings a large tree of its own. .venv-X comes from requirements-X.txt.
.venv-%/.installed: requirements-%.txt
	@echo "==> creating .venv-$* from $<"
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/pip install --quiet --upgrade pip
	.venv-$*/bin/pip install --quiet -r $<
	touch $@

venv: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed ## Create the virtual environments

lint: venv ## ruff, mypy (strict, on the layer), cfn-lint, sam validate, and checkov on the template as SAM translates it
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM_ENV) $(SAM) validate --template template.yaml
	@mkdir -p .local
	$(SAM_VENV)/bin/python tools/sam_translate.py > .local/translated.json
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov -f .local/translated.json --config-file .checkov.yaml

format: venv ## Format and fix what ruff can
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint ## Every test suite: lint, unit, integration, end-to-end (with the console in a real browser)
	@$(MAKE) --no-print-directory browser || echo "!!! going on without it: the browser tests (tests/e2e/test_console_browser.py) will FAIL"
	$(PY) -m pytest tests/unit tests/integration tests/e2e

# The console's browser tests drive Debian's Chromium through Debian's chromedriver (Selenium with a Service:
# nothing downloaded at test time). Installed once, by apt-get, as root or through sudo.
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
browser: ## Chromium and chromedriver for the browser tests (Debian's chromium, chromium-driver; apt-get, sudo if not root)
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null; then sudo=sudo; else \
	  echo "!!! cannot install chromium and chromium-driver: not root and no sudo"; exit 1; fi; \
	echo "==> installing Debian's chromium and chromium-driver with apt-get (for the console's browser tests)"; \
	if $$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
	   && [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then $(CHROMIUM) --version; else \
	  echo ""; \
	  echo "!!! ================================================================================"; \
	  echo "!!! COULD NOT INSTALL the browser: $(CHROMIUM) and $(CHROMEDRIVER) are needed"; \
	  echo "!!! (apt-get install chromium chromium-driver, as root). The browser tests FAIL without them."; \
	  echo "!!! ================================================================================"; \
	  exit 1; fi

test-fast: venv ## Unit and integration tests only
	$(PY) -m pytest tests/unit tests/integration

bench: build ## Benchmarks: cold start, AWS calls per operation, warm overhead, package size, console pages, local stack throughput
	@echo "== cold start"; $(PY) benchmarks/cold_start.py 2>&1 | grep -v "^WARNING: Location"
	@echo "== AWS calls per operation (warm)"; $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_aws_call_budgets.py >/dev/null && cat .local/aws_calls.txt
	@echo "== AWS requests per batch recipient, whole life"; $(PY) -m pytest -q -p no:cacheprovider tests/integration/test_batch_cost.py >/dev/null && cat .local/batch_cost.txt
	@echo "== warm handler overhead"; $(PY) benchmarks/warm_overhead.py 2>/dev/null | grep -A4 "^Warm invocation"
	@echo "== package size (sam build)"; $(PY) benchmarks/package_size.py
	@echo "== operator console and fleet listing (local stack)"; $(PY) benchmarks/console.py
	@echo "== local stack throughput"; $(PY) load/run_load.py

fuzz: venv ## Longer hostile-input runs: schemathesis (200 examples per operation) and the hypothesis fuzzers (1000)
	SCHEMATHESIS_EXAMPLES=$${SCHEMATHESIS_EXAMPLES:-200} FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-1000} \
	  $(PY) -m pytest tests/e2e/test_contract_fuzz.py tests/integration/test_hostile_input.py

load: venv ## Load on loopback against the local stack, then reconcile: single sends (LOAD_CLIENTS, LOAD_MESSAGES), then one batch of LOAD_BATCH (10,000)
	$(PY) load/run_load.py
	$(PY) load/batch_load.py

run: venv ## The whole system locally: moto servers (DynamoDB on :5001, the rest on :5000), API on :3000, Eseye simulator on :5010
	$(PY) -m local_stack.run

build: venv ## sam build (no container)
	$(SAM_ENV) $(LAYER_ENV) $(SAM) build --template template.yaml
	@find .aws-sam/build/CommonLayer -name '*.pyc' -print -quit | grep -q . || \
	  echo "!!! WARNING: the CommonLayer was built WITHOUT BYTECODE (no Python 3.13 found): slower cold starts, see above."

deploy: build ## sam deploy --guided (needs an AWS account)
	$(SAM) deploy --guided

destroy: venv ## Delete the deployed stack (STACK=name)
	$(SAM) delete --stack-name $${STACK:?set STACK to the stack name}

invoke-%: venv ## Invoke a function against the running local stack: make invoke-SendFunction EVENT=events/send_gsm7.json
	$(PY) -m local_stack.invoke $* $${EVENT:?set EVENT to an events/ file}

clean: ## Remove build output and local state
	rm -rf .aws-sam .local .pytest_cache .hypothesis .ruff_cache

.PHONY: help venv lint format test browser test-fast bench fuzz load run build deploy destroy clean
