"""Shared fixtures: moto-backed AWS built from template.yaml, the Eseye simulator, and handler invocation."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings
from moto import mock_aws

from local_stack.apigw import LambdaContext
from local_stack.eseye_simulator import EseyeSimulator
from local_stack.moto_server import atomic_transactions
from local_stack.resources import create_resources
from local_stack.template import Context, default_parameters, functions, load_template

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
REGION = "eu-west-1"
WEBHOOK_TOKENS = "tok-primary-0123456789,tok-secondary-9876543210"
MAX_SQS_DELAY = 900  # seconds: SQS delays no message longer

# Property tests test behaviour, not speed: on a busy machine an example can take longer than hypothesis's
# 200 ms deadline, or its data longer to generate, without anything being wrong.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "EseyeSmsGateway",
    # botocore 1.44 sends DynamoDB Streams calls to account-based hosts that moto 5.2.5 does not route.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "POWERTOOLS_SERVICE_NAME": "eseye-sms-gateway",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def reset_caches() -> None:
    """Forget everything a cold start builds, as a new Lambda container would."""
    from smsgw import config, deps
    from smsgw.adapters import aws

    # Everything else a container builds once lives on its Deps, which goes with default_deps.
    config.settings.cache_clear()
    deps.default_deps.cache_clear()
    aws.client.cache_clear()


@dataclass
class Stack:
    """AWS resources from template.yaml in moto, plus the simulator, and a way to call each function."""

    context: Context
    clients: dict[str, Any]
    eseye: EseyeSimulator
    monkeypatch: pytest.MonkeyPatch
    queue_clock_skew_ms: float = 0.0

    def physical(self, logical_id: str, attribute: str = "Ref") -> str:
        return self.context.physical[logical_id][attribute]

    @property
    def table(self) -> str:
        return self.physical("Table")

    def environment(self, function: str) -> dict[str, str]:
        return functions(self.context)[function].environment

    def deps(self, function: str = "SendFunction"):
        from smsgw.config import Settings
        from smsgw.deps import build_deps

        return build_deps(Settings.from_env(self.environment(function)), self.clients)

    def handler(self, function: str):
        """The function's handler, loaded once (a warm container), for many invocations."""
        self.invoke(function, None)  # cold start: environment, caches, module
        module = sys.modules[f"fn_{function}"]
        spec = functions(self.context)[function]
        entry = getattr(module, spec.handler.split(".")[1])
        return lambda event: entry(event, LambdaContext(function_name=function, timeout_seconds=spec.timeout))

    def invoke(self, function: str, event: dict[str, Any] | None) -> dict[str, Any]:
        """Call the function's real handler with the environment the template gives it (a cold start each time)."""
        spec = functions(self.context)[function]
        for name, value in spec.environment.items():
            self.monkeypatch.setenv(name, value)
        reset_caches()
        module_name = f"fn_{function}"
        source = spec.code_dir / (spec.handler.split(".")[0] + ".py")
        module_spec = importlib.util.spec_from_file_location(module_name, source)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
        handler = getattr(module, spec.handler.split(".")[1])
        if event is None:
            return {}
        return handler(event, LambdaContext(function_name=function, timeout_seconds=spec.timeout))

    def message_item(self, message_id: str) -> dict[str, Any] | None:
        """The message's item as stored, index keys included."""
        return self.deps().store.table.get(f"MSG#{message_id}", "META")

    def queue_jobs(self, logical_id: str = "SendRetryQueue", wait: float = MAX_SQS_DELAY) -> list[dict[str, Any]]:
        """Receive and remove the jobs on a queue, with those delayed (retry backoff) by up to `wait` seconds:
        the test moves the queue clock past their delay instead of waiting it out."""
        url = self.physical(logical_id)
        jobs = self._drain(url)
        delayed = self.clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])["Attributes"]
        if int(delayed.get("ApproximateNumberOfMessagesDelayed", 0)):
            self.advance_queue_clock(wait)
            jobs += self._drain(url)
        return jobs

    def _drain(self, url: str) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        while batch := self.clients["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
            for message in batch:
                jobs.append(json.loads(message["Body"]))
                self.clients["sqs"].delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return jobs

    def advance_queue_clock(self, seconds: float) -> None:
        """Move moto's SQS clock `seconds` ahead: message delays and visibility timeouts run out as if that time had passed."""
        from moto.core.utils import unix_time_millis
        from moto.sqs import models

        self.queue_clock_skew_ms += seconds * 1000
        self.monkeypatch.setattr(models, "unix_time_millis", lambda: unix_time_millis() + self.queue_clock_skew_ms)


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def eseye():
    simulator = EseyeSimulator(port=0, receipt_delay=0.05, log=lambda *_: None).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def stack_parameters() -> dict[str, str]:
    """Template parameters of the test stack beyond the suite's usual ones. Suites about other things send
    several commands to one SIM without receipts, so for them each SIM may have ten in flight (the most a
    SIM holds). The suites of the per-SIM queue itself override this with {}: the template's defaults."""
    return {"SimMaxInFlight": "10"}


@pytest.fixture
def stack(template, eseye, monkeypatch, stack_parameters):
    # moto undoes a failed transaction by restoring a copy of the whole table, erasing other writes;
    # DynamoDB undoes only the transaction's own items (local_stack/moto_server.py says more).
    atomic_transactions()
    with mock_aws():
        clients = {name: boto3.client(name, region_name=REGION) for name in ("dynamodb", "sqs", "sns", "secretsmanager", "dynamodbstreams")}
        context = Context(
            template,
            default_parameters(template, {"EseyeBaseUrl": eseye.url, "RetryBaseDelaySeconds": "1", "SendMaxAttempts": "3", **stack_parameters}),
        )
        create_resources(
            context,
            clients,
            secret_overrides={
                "GatewaySecret": {"username": eseye.username, "password": eseye.password, "webhook_tokens": WEBHOOK_TOKENS},
            },
        )
        reset_caches()
        yield Stack(context, clients, eseye, monkeypatch)
        reset_caches()
