"""Start the local stack as `make run` does, on free ports, and drive it over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests

from local_stack.eseye_simulator import EseyeSimulator
from tests.e2e.chromium import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, DESKTOP, Console, viewport
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningStack:
    def __init__(self, outputs: dict[str, str], eseye: EseyeSimulator, process: subprocess.Popen, log_path: Path):
        self.outputs, self.eseye, self.process, self.log_path = outputs, eseye, process, log_path
        self.api = outputs["ApiUrl"]
        self.session = requests.Session()

    def client(self, service: str):
        # DynamoDB has a moto server of its own, the other services share one (local_stack/run.py)
        dynamodb = service in ("dynamodb", "dynamodbstreams")
        return boto3.client(
            service,
            endpoint_url=self.outputs["DynamoDbEndpointUrl" if dynamodb else "AwsEndpointUrl"],
            region_name=self.outputs["Region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def send(self, **body) -> requests.Response:
        return self.session.post(f"{self.api}/messages", json=body, timeout=30)

    def get(self, message_id: str) -> dict:
        return self.session.get(f"{self.api}/messages/{message_id}", timeout=30).json()

    def wait_for_status(self, message_id: str, wanted: set[str], timeout: float = 60) -> dict:
        def reached() -> dict | None:
            message = self.get(message_id)
            return message if message.get("status") in wanted else None

        return wait_until(reached, timeout, interval=0.2, message=f"message {message_id} reaches {sorted(wanted)}")


def smsgw(stack: RunningStack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The smsgw command-line client, as a user runs it, against `stack`."""
    outputs = stack.log_path.parent / "outputs.json"
    return subprocess.run(
        [sys.executable, "-m", "smsgw_cli.main", "--outputs", str(outputs), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PYTHONPATH": str(ROOT / "cli"), "PATH": "/usr/bin:/bin"},
    )


@contextlib.contextmanager
def running_stack(state: Path, **environment: str):
    """The stack as `make run` starts it; `environment` sets more of its variables (ESEYE_MAX_SENDS_PER_SECOND...)."""
    eseye = EseyeSimulator(port=free_port(), receipt_delay=0.3, log=lambda *_: None).start()
    env = {
        **os.environ,
        "API_PORT": str(free_port()),
        "AWS_PORT": str(free_port()),
        "DYNAMODB_PORT": str(free_port()),
        "SIM_PORT": str(free_port()),
        "CONSOLE_PORT": str(free_port()),
        "ESEYE_BASE_URL": eseye.url,
        "LOCAL_STATE_DIR": str(state),
        "RETRY_BASE_DELAY_SECONDS": "1",
        "ESEYE_READ_TIMEOUT": "2",
        "SEND_MAX_ATTEMPTS": "4",
        "PYTHONUNBUFFERED": "1",
        **environment,
    }
    log_path = state / "stack.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "local_stack.run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    outputs_path = state / "outputs.json"
    deadline = time.monotonic() + 90
    while not outputs_path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"local stack did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    outputs = json.loads(outputs_path.read_text())
    eseye.mo_url = f"{outputs['ApiUrl']}/webhooks/{outputs['WebhookToken']}/mo"
    try:
        yield RunningStack(outputs, eseye, process, log_path)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        eseye.stop()


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("local-stack")) as stack:
        yield stack


@pytest.fixture(scope="module")
def isolated_stack(tmp_path_factory):
    """A stack of its own, for tests that leave state others must not see (fuzzing edits the lists)."""
    with running_stack(tmp_path_factory.mktemp("isolated-stack")) as stack:
        yield stack


@pytest.fixture
def subscriber(local_stack):
    """A real SQS queue subscribed to the events topic; returns a function that collects events."""
    sqs, sns = local_stack.client("sqs"), local_stack.client("sns")
    url = sqs.create_queue(QueueName=f"e2e-subscriber-{time.time_ns()}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=local_stack.outputs["EventsTopicArn"], Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    seen: dict[str, dict] = {}

    def collect(until, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                event = json.loads(message["Body"])
                seen.setdefault(event["id"], event)  # a deduplicating subscriber
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if until(list(seen.values())):
                break
        return list(seen.values())

    return collect


# --- the console through Flask's test client ------------------------------------------------------------


@pytest.fixture(scope="module")
def console(local_stack):
    """The console app over the local stack's API (its pages' tests open it with a test client of their own)."""
    from smsgw_client import Client
    from smsgw_console.server import create_app

    app = create_app(Client(local_stack.api))
    app.testing = True
    return app


# --- the console in a real browser (tests/e2e/chromium.py) -------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Chromium for the console's browser tests (a module's own `browser` fixture, a Flask test client in the
    console's page tests, takes its place there)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"the browser tests need Debian's Chromium and its driver: {', '.join(missing)} missing. "
            "Install them with `make browser` (apt-get install chromium chromium-driver, as root)",
            pytrace=False,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A Service with the driver's path: Selenium Manager never runs (it would download a driver)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, local_stack):
    """The browser at desktop size, its console log drained, opening console paths."""
    viewport(browser, DESKTOP)
    browser.get_log("browser")
    return Console(browser, local_stack.outputs["ConsoleUrl"])
