"""Warm handler overhead: in-process time per invocation with AWS (moto) and Eseye (the simulator on
loopback) answering, against a bare handler that makes the same AWS and Eseye calls and nothing else.
Also prints where a warm send spends its time (pyinstrument), if PROFILE=1.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]
RUNS = int(os.environ.get("WARM_RUNS", "200"))
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }
)


def main() -> None:
    import boto3
    import requests
    from moto import mock_aws

    from local_stack.apigw import LambdaContext
    from local_stack.eseye_simulator import EseyeSimulator
    from local_stack.moto_server import atomic_transactions
    from local_stack.resources import create_resources
    from local_stack.template import Context, default_parameters, functions, load_template

    simulator = EseyeSimulator(port=0, receipt_delay=3600, log=lambda *_: None).start()
    # moto copies every table for each TransactWriteItems (to roll back), a cost growing with the table
    # that DynamoDB does not have; the local stack's patch undoes only the transaction's own items.
    atomic_transactions()
    with mock_aws():
        clients = {n: boto3.client(n, region_name="eu-west-1") for n in ("dynamodb", "sqs", "sns", "secretsmanager")}
        template = load_template()
        # Sends back to back outpace the default 20/s toward Eseye; the waits for slots are the configured
        # rate, not the handler's overhead, so the bench runs at the highest rate (each send still takes its slot).
        context = Context(template, default_parameters(template, {"EseyeBaseUrl": simulator.url, "EseyeMaxSendsPerSecond": "100"}))
        create_resources(context, clients, {"GatewaySecret": {"username": "dev-user", "password": "dev-password", "webhook_tokens": "tok"}})
        specs = functions(context)
        os.environ.update(specs["SendFunction"].environment)

        def load(function: str):
            spec = specs[function]
            module_spec = importlib.util.spec_from_file_location(f"bench_{function}", spec.code_dir / "app.py")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return lambda event: module.lambda_handler(event, LambdaContext(function_name=function))

        events = {name: json.loads((ROOT / "events" / f"{name}.json").read_text()) for name in ("send_gsm7", "get_message", "receipt_get_delivered")}
        send, get, receipt = load("SendFunction"), load("GetMessageFunction"), load("ReceiptWebhookFunction")
        sims = itertools.count(1)

        def idle_sim() -> str:
            """A SIM with nothing in flight: each SIM takes one message at a time (issue 13), and the common
            path measured here is a send to an idle SIM."""
            return f"4477{next(sims):08d}"

        sent = json.loads(send({**events["send_gsm7"], "body": json.dumps({"to": idle_sim(), "text": "warm"})})["body"])
        get_event = {**events["get_message"], "path": f"/messages/{sent['id']}", "pathParameters": {"message_id": sent["id"]}}

        # Time spent inside AWS and Eseye calls: what a bare handler making the same calls would take.
        import botocore.client

        inside = {"seconds": 0.0}
        original_api_call = botocore.client.BaseClient._make_api_call
        original_send = requests.Session.send

        def timed_api_call(self, operation, params):
            started = time.perf_counter()
            try:
                return original_api_call(self, operation, params)
            finally:
                inside["seconds"] += time.perf_counter() - started

        def timed_send(self, request, **kwargs):
            started = time.perf_counter()
            try:
                return original_send(self, request, **kwargs)
            finally:
                inside["seconds"] += time.perf_counter() - started

        botocore.client.BaseClient._make_api_call = timed_api_call
        requests.Session.send = timed_send

        def timed(call, runs=RUNS) -> tuple[float, float]:
            call()
            totals, calls = [], []
            for _ in range(runs):
                inside["seconds"] = 0.0
                started = time.perf_counter()
                call()
                totals.append(time.perf_counter() - started)
                calls.append(inside["seconds"])
            return statistics.median(totals), statistics.median(calls)

        # A receipt per message, as in production: pre-create the messages it will deliver.
        targets = [
            json.loads(send({**events["send_gsm7"], "body": json.dumps({"to": idle_sim(), "text": "r"})})["body"])["id"] for _ in range(RUNS + 2)
        ]

        def receipt_call():
            fields = {"messageid": targets.pop(), "referenceid": "r", "statuscode": "delivered", "status": "delivered"}
            event = {**events["receipt_get_delivered"], "pathParameters": {"token": "tok"}, "path": "/webhooks/tok/receipt"}
            receipt({**event, "queryStringParameters": fields})

        rows = [
            ("GET /messages/{id}", *timed(lambda: get(get_event))),
            ("receipt webhook", *timed(receipt_call)),
            ("POST /messages (sent)", *timed(lambda: send({**events["send_gsm7"], "body": json.dumps({"to": idle_sim(), "text": "x"})}))),
        ]
        print(f"Warm invocation, median of {RUNS} (moto in-process, Eseye simulator on loopback)")
        print(f"{'operation':<24} {'handler':>10} {'in AWS/Eseye calls':>19} {'overhead':>10}")
        for name, ours, bare in rows:
            print(f"{name:<24} {ours * 1000:>7.2f} ms {bare * 1000:>16.2f} ms {(ours - bare) * 1000:>7.2f} ms")

        if os.environ.get("PROFILE") == "1":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
            for _ in range(100):
                send({**events["send_gsm7"], "body": json.dumps({"to": idle_sim(), "text": "x"})})
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False)[:6000])
    simulator.stop()


if __name__ == "__main__":
    main()
