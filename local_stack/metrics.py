"""The functions' metrics reach moto's CloudWatch as they reach CloudWatch in AWS: through EMF in their logs.

In AWS, Powertools Metrics prints one embedded metric format (EMF) document per flush to the function's log,
and CloudWatch Logs turns it into metrics. Here each worker (workers.py) keeps the EMF lines its function
prints, hands them back with the invocation's result, and the stack puts them into moto's CloudWatch as
PutMetricData: the same namespace, dimensions, values, units and time. So GET /health on `make run` shows
the real Eseye error rate.
"""

from __future__ import annotations

import io
import json
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

PUT_MAX_DATA = 1000  # metric data per PutMetricData call
PUT_MAX_VALUES = 150  # values per metric datum


def emf_document(line: str) -> dict[str, Any] | None:
    """The EMF document a log line is, or None for any other line."""
    text = line.strip()
    if not (text.startswith("{") and '"_aws"' in text):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    directives = document.get("_aws") if isinstance(document, dict) else None
    if not isinstance(directives, dict) or not isinstance(directives.get("CloudWatchMetrics"), list):
        return None
    return document


def put_metric_data_requests(document: dict[str, Any]) -> list[dict[str, Any]]:
    """PutMetricData requests (keyword arguments) for one EMF document, as CloudWatch Logs extracts it: for each
    directive, each of its dimension sets and each metric, a datum with the document's values for them."""
    directives = document["_aws"]
    timestamp = datetime.fromtimestamp(int(directives.get("Timestamp", 0)) / 1000, UTC)
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for directive in directives["CloudWatchMetrics"]:
        for dimension_set in directive.get("Dimensions") or [[]]:
            dimensions = [{"Name": name, "Value": str(document[name])} for name in dimension_set if name in document]
            for metric in directive.get("Metrics", []):
                name = metric["Name"]
                if name not in document:
                    continue
                values = document[name] if isinstance(document[name], list) else [document[name]]
                for start in range(0, len(values), PUT_MAX_VALUES):
                    datum: dict[str, Any] = {
                        "MetricName": name,
                        "Dimensions": dimensions,
                        "Timestamp": timestamp,
                        "Values": [float(v) for v in values[start : start + PUT_MAX_VALUES]],
                        "StorageResolution": int(metric.get("StorageResolution", 60)),
                    }
                    if metric.get("Unit"):
                        datum["Unit"] = metric["Unit"]
                    by_namespace.setdefault(directive["Namespace"], []).append(datum)
    return [
        {"Namespace": namespace, "MetricData": data[start : start + PUT_MAX_DATA]}
        for namespace, data in by_namespace.items()
        for start in range(0, len(data), PUT_MAX_DATA)
    ]


class EmfCapture(io.TextIOBase):
    """A worker's stdout: EMF lines are kept for the stack to publish, every other line goes on to `stream`."""

    def __init__(self, stream: Any):
        self.stream = stream
        self._partial = ""
        self._documents: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # a function's own threads may print too

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            passed = []
            for line in lines:
                document = emf_document(line)
                if document is None:
                    passed.append(line + "\n")
                else:
                    self._documents.append(document)
            if passed:
                self.stream.write("".join(passed))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def take(self) -> list[dict[str, Any]]:
        """The EMF documents printed since the last take (a flush's document is printed whole, one line)."""
        with self._lock:
            taken, self._documents = self._documents, []
            return taken


class MetricForwarder:
    """Puts EMF documents into CloudWatch (moto's) in the background, so an invocation never waits for it.
    Documents that arrived together go in one PutMetricData per namespace (up to 1,000 data each), so a busy
    stack adds a call per burst to the moto server it shares with SQS and SNS, not one per invocation."""

    def __init__(self, cloudwatch: Any, log: Callable[[str], None]):
        self.cloudwatch, self.log = cloudwatch, log
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="metrics")

    def start(self) -> MetricForwarder:
        self._thread.start()
        return self

    def submit(self, documents: list[dict[str, Any]]) -> None:
        for document in documents:
            self._queue.put(document)

    def stop(self) -> None:
        """Put what was submitted, then stop."""
        self._queue.put(None)
        self._thread.join(10)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            documents = [first]
            while len(documents) < PUT_MAX_DATA:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    stopping = True
                    break
                documents.append(following)
            self._put(documents)

    def _put(self, documents: list[dict[str, Any]]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for document in documents:
            try:
                requests = put_metric_data_requests(document)
            except (KeyError, TypeError, ValueError) as exc:  # not EMF as CloudWatch Logs would take it: dropped, as there
                self.log(f"metrics: an EMF document CloudWatch would refuse: {exc}")
                continue
            for request in requests:
                by_namespace.setdefault(request["Namespace"], []).extend(request["MetricData"])
        for namespace, data in by_namespace.items():
            for start in range(0, len(data), PUT_MAX_DATA):
                try:
                    self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + PUT_MAX_DATA])
                except Exception as exc:  # a metric lost locally must not stop the others
                    self.log(f"metrics: could not put metrics into CloudWatch: {exc}")
