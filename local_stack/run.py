"""`make run`: the whole gateway on one machine, with no Docker and no AWS account.

moto servers (AWS): DynamoDB and its stream on DYNAMODB_PORT, SQS, SNS and Secrets Manager on AWS_PORT;
resources created from template.yaml, every function in its own worker processes, the API and webhooks
on API_PORT from the template's routes, queue and stream pollers, the Eseye simulator on SIM_PORT
(unless ESEYE_BASE_URL points at a real Eseye), and the operator console on CONSOLE_PORT.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from local_stack.template import ROOT, Context, api_routes, default_parameters, functions, load_template

REGION = "eu-west-1"


def log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


# Services served by the DynamoDB server; every other goes to the general one. moto's SNS delivers to SQS
# inside its own process, so SNS and SQS must share a server; DynamoDB Streams reads DynamoDB's tables.
DYNAMODB_SERVICES = ("dynamodb", "dynamodbstreams")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoProcess:
    """moto's server mode in a child process, stopped with the stack."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.process: Any = None

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        import subprocess

        # moto's server with DynamoDB requests applied one at a time, as DynamoDB applies them (local_stack/moto_server.py)
        command = [sys.executable, "-m", "local_stack.moto_server", "-H", self.host, "-p", str(self.port)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self) -> None:
        import socket

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OSError(f"moto server exited (is port {self.port} free?)")
            with socket.socket() as probe:
                if probe.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.1)
        raise OSError("moto server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except Exception:
                self.process.kill()


class Console:
    """The operator console (cli/smsgw_console) over this stack's API, served by waitress in a thread, on loopback."""

    def __init__(self, host: str, port: int, api_url: str):
        self.host, self.port, self.api_url = host, port, api_url
        self.waitress: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        from waitress.server import create_server

        from smsgw_client import Client
        from smsgw_console.server import create_app

        # create_server binds at once, so a taken port stops the start like the other servers' ports do
        self.waitress = create_server(create_app(Client(self.api_url)), host=self.host, port=self.port, threads=4, ident="smsgw-console")
        threading.Thread(target=self.waitress.run, daemon=True, name="console").start()

    def stop(self) -> None:
        if self.waitress is not None:
            self.waitress.close()
            self.waitress.task_dispatcher.shutdown(timeout=2)


class LocalStack:
    def __init__(self, env: dict[str, str] | None = None):
        env = dict(os.environ if env is None else env)
        self.host = "127.0.0.1"
        self.api_port = int(env.get("API_PORT", 3000))
        self.aws_port = int(env.get("AWS_PORT", 5000))
        # DynamoDB in a moto server of its own (the other core): 5001 for `make run`; a stack started on a
        # chosen AWS_PORT (tests, load runs) gets a free port unless DYNAMODB_PORT names one.
        self.dynamodb_port = int(env.get("DYNAMODB_PORT") or (free_port() if env.get("AWS_PORT") else 5001))
        self.sim_port = int(env.get("SIM_PORT", 5010))
        # the console: 8300 for `make run`; like DynamoDB's, a free port for a stack on a chosen AWS_PORT (load runs)
        self.console_port = int(env.get("CONSOLE_PORT") or (free_port() if env.get("AWS_PORT") else 8300))
        self.external_eseye = env.get("ESEYE_BASE_URL", "")
        self.state_dir = Path(env.get("LOCAL_STATE_DIR", ROOT / ".local"))
        self.receipt_delay = float(env.get("RECEIPT_DELAY", 1.0))
        self.log_level = env.get("LOG_LEVEL", "WARNING")
        self.schedule_seconds = env.get("SCHEDULE_SECONDS", "")  # run scheduled functions more often than their rate
        self.parameter_overrides = {
            "RetryBaseDelaySeconds": env.get("RETRY_BASE_DELAY_SECONDS", "2"),
            "EseyeReadTimeoutSeconds": env.get("ESEYE_READ_TIMEOUT", "5"),
            "SendMaxAttempts": env.get("SEND_MAX_ATTEMPTS", "8"),
        }
        # Each SIM's delivery queue: the template's defaults unless set (a short in-flight timeout for tests).
        for variable, parameter in [
            ("SIM_MAX_IN_FLIGHT", "SimMaxInFlight"),
            ("SIM_MAX_QUEUED", "SimMaxQueued"),
            ("SIM_MAX_PER_HOUR", "SimMaxPerHour"),
            ("SIM_IN_FLIGHT_TIMEOUT_SECONDS", "SimInFlightTimeoutSeconds"),
            ("SIM_BUFFER_WARN_AT", "SimBufferWarnAt"),
            ("ESEYE_MAX_SENDS_PER_SECOND", "EseyeMaxSendsPerSecond"),  # the steady rate toward Eseye (README, Pacing)
        ]:
            if env.get(variable):
                self.parameter_overrides[parameter] = env[variable]
        self.eseye_credentials = {"username": env.get("ESEYE_USERNAME", "dev-user"), "password": env.get("ESEYE_PASSWORD", "dev-password")}
        self.components: list[Any] = []
        self.pools: dict[str, Any] = {}
        self.pollers: list[Any] = []
        self.metrics: Any = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def aws_url(self) -> str:
        return f"http://{self.host}:{self.aws_port}"

    @property
    def dynamodb_url(self) -> str:
        return f"http://{self.host}:{self.dynamodb_port}"

    def endpoint(self, service: str) -> str:
        return self.dynamodb_url if service in DYNAMODB_SERVICES else self.aws_url

    def start(self) -> dict[str, str]:
        import boto3

        from local_stack.eseye_simulator import EseyeSimulator
        from local_stack.gateway import Gateway
        from local_stack.metrics import MetricForwarder
        from local_stack.pollers import Scheduler, SqsPoller, StreamPoller, StreamReader
        from local_stack.resources import create_resources, outputs
        from local_stack.workers import FunctionPool

        for name, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}.items():
            os.environ.setdefault(name, value)
        # moto in processes of its own: it does most of the work, and one process's GIL would serialise it
        # with the gateway, the pollers and the simulator. Two of them, so that DynamoDB (the most work,
        # applied one request at a time) has a core to itself while SQS, SNS and Secrets Manager use the other.
        servers = [MotoProcess(self.host, self.dynamodb_port), MotoProcess(self.host, self.aws_port)]
        for server in servers:
            server.launch()
            self.components.append(server)
        for server in servers:
            server.wait_ready()
        log(f"aws   moto servers: DynamoDB on {self.dynamodb_url}, SQS, SNS and Secrets Manager on {self.aws_url}")
        clients = {
            name: boto3.client(name, endpoint_url=self.endpoint(name), region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")
            for name in ("dynamodb", "dynamodbstreams", "sqs", "sns", "secretsmanager", "cloudwatch")
        }
        # The functions' EMF metrics into moto's CloudWatch, as CloudWatch Logs extracts them in AWS (local_stack/metrics.py)
        self.metrics = MetricForwarder(clients["cloudwatch"], log).start()

        simulator = None
        eseye_url = self.external_eseye
        if not eseye_url:
            simulator = EseyeSimulator(self.host, self.sim_port, receipt_delay=self.receipt_delay, log=log, **self.eseye_credentials)
            simulator.start()
            self.components.append(simulator)
            eseye_url = simulator.url
            log(f"eseye simulator on {eseye_url}")

        template = load_template()
        parameters = default_parameters(template, {**self.parameter_overrides, "EseyeBaseUrl": eseye_url, "PublicBaseUrl": self.api_url})
        context = Context(template, parameters, region=REGION)
        token = os.urandom(20).hex()
        secret_values = {**self.eseye_credentials, "webhook_tokens": token}
        physical = create_resources(context, clients, secret_overrides={"GatewaySecret": secret_values})
        log(f"aws   created {len(physical)} resources from template.yaml: {', '.join(sorted(physical))}")
        if simulator:
            simulator.mo_url = f"{self.api_url}/webhooks/{token}/mo"

        base_environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "LANG": "C.UTF-8",
            "AWS_ENDPOINT_URL": self.aws_url,
            # botocore's per-service endpoints (AWS_ENDPOINT_URL_<service id>) send DynamoDB to its own server
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        local_overrides = {
            "ALLOW_INSECURE_CALLBACKS": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self.log_level,
        }
        specs = functions(context)
        for logical_id, spec in specs.items():
            self.pools[logical_id] = FunctionPool(spec, {**base_environment, **spec.environment, **local_overrides}, on_metrics=self.metrics.submit)
        warmers = [threading.Thread(target=pool.warm) for pool in self.pools.values()]
        for thread in warmers:
            thread.start()
        for thread in warmers:
            thread.join()
        log(f"fn    {len(self.pools)} functions warm: {', '.join(sorted(self.pools))}")

        readers: dict[str, Any] = {}  # one reader per table stream, shared by the mappings on it
        for logical_id, spec in specs.items():
            for event in spec.events.values():
                if event["Type"] == "Schedule":
                    period = float(self.schedule_seconds) if self.schedule_seconds else None
                    self.pollers.append(Scheduler(self.pools[logical_id], event["Properties"]["Schedule"], REGION, log, period))
                    continue
                if event["Type"] not in ("SQS", "DynamoDB"):
                    continue
                props = context.resolve(event.get("Properties", {}))
                if event["Type"] == "SQS":
                    arn = props["Queue"]
                    url = next(p["Ref"] for p in physical.values() if p.get("Arn") == arn)
                    # As Lambda does: up to the mapping's MaximumConcurrency invocations at once (the pool's size at most).
                    pool = self.pools[logical_id]
                    concurrency = min(int((props.get("ScalingConfig") or {}).get("MaximumConcurrency", 1)), pool.size)
                    for _ in range(concurrency):
                        self.pollers.append(SqsPoller(clients["sqs"], url, arn, pool, int(props.get("BatchSize", 10)), REGION, log))
                elif event["Type"] == "DynamoDB":
                    if props["Stream"] not in readers:
                        readers[props["Stream"]] = StreamReader(clients["dynamodbstreams"], props["Stream"], log)
                        self.pollers.append(readers[props["Stream"]])
                    self.pollers.append(StreamPoller(readers[props["Stream"]], clients["sqs"], self.pools[logical_id], props, REGION, log))
        for poller in self.pollers:
            poller.start()

        gateway = Gateway(api_routes(template), self.pools, self.host, self.api_port, parameters["Stage"], log)
        threading.Thread(target=gateway.server.serve_forever, daemon=True, name="gateway").start()
        self.components.append(gateway)
        log(f"api   {len(gateway.routes)} routes on {self.api_url}")
        console = Console(self.host, self.console_port, self.api_url)
        console.start()
        self.components.append(console)
        log(f"console on {console.url}")

        values = outputs(context)
        values.update(
            {
                "ApiUrl": self.api_url,
                "AwsEndpointUrl": self.aws_url,
                "DynamoDbEndpointUrl": self.dynamodb_url,
                "Region": REGION,
                "WebhookToken": token,
                "EseyeBaseUrl": eseye_url,
                "ConsoleUrl": console.url,
            }
        )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "outputs.json").write_text(json.dumps(values, indent=2) + "\n")
        self.outputs = values
        return values

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stopping.set()
        for component in reversed(self.components):
            try:
                if hasattr(component, "server") and hasattr(component.server, "shutdown"):
                    component.server.shutdown()
                    component.server.server_close()
                else:
                    component.stop()
            except Exception as exc:
                log(f"stop: {exc}")
        for pool in self.pools.values():
            pool.stop()
        if self.metrics:
            self.metrics.stop()


def banner(values: dict[str, str]) -> str:
    return f"""
  Eseye SMS gateway, running locally
    API          {values["ApiUrl"]}
    Console      {values["ConsoleUrl"]}   (the operator console in your browser)
    AWS (moto)   {values["AwsEndpointUrl"]}   region {values["Region"]}   (SQS, SNS, Secrets Manager)
                 {values["DynamoDbEndpointUrl"]}   (DynamoDB and its stream)
    Eseye        {values["EseyeBaseUrl"]}
    outputs      .local/outputs.json

  Send a message:
    curl -s -X POST {values["ApiUrl"]}/messages -H 'Content-Type: application/json' \\
         -d '{{"to": "447700900123", "text": "Hello from the gateway"}}'
  Or with the client:  .venv/bin/smsgw send 447700900123 "Hello"
  A device replies:    curl -X POST {values["EseyeBaseUrl"]}/_sim/mo -d '{{"source": "447700900123", "text": "hi"}}'
  Ctrl-C stops everything.
"""


def main() -> None:
    stack = LocalStack()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # A background job of a non-interactive shell starts with SIGINT ignored; Ctrl-C must still stop us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        values = stack.start()
        print(banner(values), flush=True)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        log(f"could not start: {exc} (is another `make run` using the ports? set API_PORT, AWS_PORT, DYNAMODB_PORT, SIM_PORT, CONSOLE_PORT)")
        stack.stop()
        sys.exit(1)
    except BaseException:
        stack.stop()
        raise
    log("stopping")
    stack.stop()
    log("stopped")


if __name__ == "__main__":
    main()
