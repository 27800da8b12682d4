"""Real ``celery worker`` processes for the tests: the suite's (tests/running) and the deployed
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


class Worker:
    """One ``celery worker`` process; its output goes to a file so a chatty worker never blocks on a pipe.

    It leads a process group of its own, so :meth:`kill` takes its pool's children with it, as
    losing the machine would.
    """

    def __init__(self, log: Path, queue: str, env: Mapping[str, str], *, python: str = sys.executable,
                 pool: str = "solo", concurrency: int = 1, fault_point: str | None = None) -> None:
        self.log = log
        env = dict(env)
        env.pop("MAILWRIGHT_FAULT_POINT", None)
        if fault_point:
            env["MAILWRIGHT_FAULT_POINT"] = fault_point
        pool_args = ["--pool", pool] + (["--concurrency", str(concurrency)] if pool == "prefork" else [])
        self._output = log.open("wb")
        self.process = subprocess.Popen(
            [python, "-m", "celery", "-A", "designer", "worker", *pool_args, "--loglevel", "INFO",
             "--without-heartbeat", "--without-mingle", "--without-gossip", "--hostname", f"{log.stem}@%h",
             "--queues", queue],
            cwd=ROOT, env=env, stdout=self._output, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while " ready." not in self.output():
            assert self.process.poll() is None, f"the worker exited early:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"the worker did not get ready:\n{self.output()[-3000:]}"
            time.sleep(0.1)

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

    def kill(self) -> None:
        """SIGKILL the worker and its pool's children at once: nothing of it can ack or reject."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        # A prefork child the warm shutdown left behind must not outlive the test.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._output.close()
