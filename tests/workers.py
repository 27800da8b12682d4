"""Real ``celery worker`` (and other long-running) processes for the tests: the suite's (tests/running) and the deployed
product's (tests/production, from the clean virtualenv of requirements.txt)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class Service:
    """A long-running process of the tests (a worker, gunicorn, beat): its output goes to a file, so a
    chatty one never blocks on a pipe, and it leads a process group of its own, so stopping or
    killing it takes its children (a worker's pool, gunicorn's workers) with it."""

    def __init__(self, log: Path, args: list[str], env: Mapping[str, str]) -> None:
        self.log = log
        self._output = log.open("wb")
        self.process = subprocess.Popen(args, cwd=ROOT, env=dict(env), stdout=self._output,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.process.poll() is None, f"{self.log.stem} exited early:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"{self.log.stem}: no {text!r} yet:\n{self.output()[-3000:]}"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the process and its children at once: nothing of it can clean up, ack or reject."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # a worker's warm shutdown, gunicorn's graceful one
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # a child the shutdown left behind
        except ProcessLookupError:
            pass
        self._output.close()


class Worker(Service):
    """One ``celery worker`` process."""

    def __init__(self, log: Path, queue: str, env: Mapping[str, str], *, python: str = sys.executable,
                 pool: str = "solo", concurrency: int = 1, fault_point: str | None = None) -> None:
        env = dict(env)
        env.pop("MAILWRIGHT_FAULT_POINT", None)
        if fault_point:
            env["MAILWRIGHT_FAULT_POINT"] = fault_point
        pool_args = ["--pool", pool] + (["--concurrency", str(concurrency)] if pool == "prefork" else [])
        super().__init__(log, [python, "-m", "celery", "-A", "designer", "worker", *pool_args, "--loglevel", "INFO",
                               "--without-heartbeat", "--without-mingle", "--without-gossip",
                               "--hostname", f"{log.stem}@%h", "--queues", queue], env)

    def wait_ready(self, timeout: float = 60) -> None:
        self.wait_for(" ready.", timeout)

    def wait_exit(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not die:\n{self.output()[-3000:]}")

    def pids(self) -> set[int]:
        """The worker's process and its pool's children (whose pid a run records as its worker)."""
        children = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # The command may hold spaces and parentheses: the fields after the last ')' are fixed.
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.process.pid:
                children.add(int(stat.parent.name))
        return {self.process.pid, *children}
