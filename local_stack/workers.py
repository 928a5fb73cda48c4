"""Function runtimes: each function runs in its own worker processes, as Lambda runs each in its own sandbox.

A worker imports the function's real handler once (its cold start) with exactly the environment the
template gives that function, then serves invocations over a pipe. Two functions never share modules
or environment variables, which one Python process could not guarantee (os.environ is process-wide).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local_stack.template import ROOT, FunctionSpec

_spawn = multiprocessing.get_context("spawn")


class InvocationError(Exception):
    """The handler raised: Lambda reports it as a function error."""

    def __init__(self, error_type: str, message: str, trace: str):
        super().__init__(f"{error_type}: {message}")
        self.error_type, self.trace = error_type, trace


class InvocationTimeout(Exception):
    pass


def _worker_main(connection, environment: dict[str, str], code_dir: str, handler: str, function_name: str, timeout: int) -> None:
    os.environ.clear()
    os.environ.update(environment)
    sys.path[:0] = [code_dir, str(ROOT / "layers" / "common")]
    module_name, function = handler.rsplit(".", 1)
    from local_stack.apigw import LambdaContext
    from local_stack.metrics import EmfCapture

    # Powertools Metrics prints its EMF documents here; they go back with each result (local_stack/metrics.py).
    capture = EmfCapture(sys.stdout)
    sys.stdout = capture
    entry = getattr(__import__(module_name), function)
    connection.send(("ready", None))
    while True:
        try:
            event = connection.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if event is None:
            return
        try:
            result = entry(event, LambdaContext(function_name=function_name, timeout_seconds=timeout))
            connection.send(("ok", result, capture.take()))
        except KeyboardInterrupt:
            return
        except BaseException as exc:
            connection.send(("error", (type(exc).__name__, str(exc), traceback.format_exc()), capture.take()))


@dataclass
class _Worker:
    process: Any
    connection: Any


class FunctionPool:
    """Up to `size` warm workers for one function; each serves one invocation at a time."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: dict[str, str],
        size: int = 2,
        on_metrics: Callable[[list[dict[str, Any]]], None] | None = None,
    ):
        self.spec = spec
        self.on_metrics = on_metrics  # where the EMF documents the function printed go (CloudWatch's part)
        self.environment = {**environment, "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id}
        self.size = size
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._started = 0
        self._lock = threading.Lock()
        self._all: list[_Worker] = []

    def _start_worker(self) -> _Worker:
        parent, child = _spawn.Pipe()
        process = _spawn.Process(
            target=_worker_main,
            args=(child, self.environment, str(self.spec.code_dir), self.spec.handler, self.spec.logical_id, self.spec.timeout),
            daemon=True,
            name=f"fn-{self.spec.logical_id}",
        )
        process.start()
        if not parent.poll(60):
            process.kill()
            raise RuntimeError(f"{self.spec.logical_id} did not start")
        _status, _ = parent.recv()
        worker = _Worker(process, parent)
        self._all.append(worker)
        return worker

    def warm(self) -> None:
        with self._lock:
            if self._started == 0:
                self._started += 1
                self._idle.put(self._start_worker())

    def _acquire(self) -> _Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._started < self.size:
                self._started += 1
                try:
                    return self._start_worker()
                except Exception:
                    self._started -= 1
                    raise
        return self._idle.get()

    def invoke(self, event: dict[str, Any]) -> Any:
        worker = self._acquire()
        try:
            worker.connection.send(event)
            if not worker.connection.poll(self.spec.timeout + 1):
                raise InvocationTimeout(f"{self.spec.logical_id} timed out after {self.spec.timeout} s")
            status, payload, documents = worker.connection.recv()
        except (InvocationTimeout, EOFError, OSError):
            # A timed-out or crashed sandbox is discarded, as Lambda does.
            worker.process.kill()
            with self._lock:
                self._started -= 1
                self._all.remove(worker)
            raise
        self._idle.put(worker)
        if documents and self.on_metrics:
            self.on_metrics(documents)
        if status == "error":
            raise InvocationError(*payload)
        return payload

    def stop(self) -> None:
        for worker in self._all:
            with contextlib.suppress(OSError):
                worker.connection.send(None)
        deadline = time.monotonic() + 3
        for worker in self._all:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
