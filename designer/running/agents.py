"""Agent groups at run time: which queue an operation's runs go to, and which workers serve it now.

Workers are seen through Celery's own control API (a broadcast ``inspect``: stats, queues, tasks
in progress, and ``mailwright_agent`` for versions), never a table of our own: what answers is
alive. The answer is cached a few seconds so pages stay fast, and a broker that cannot broadcast
(the embedded filesystem one) or does not answer leaves the status unknown rather than a page hung.
"""

from __future__ import annotations

import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import celery
from celery.worker.control import inspect_command
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.text import slugify

from designer.models import AgentGroup, Operation

# How long workers get to answer a broadcast, and how long the answer is reused.
INSPECT_TIMEOUT = 0.6
CACHE_SECONDS = 5
_CACHE_KEY = "mailwright:agents"


def mailwright_version() -> str:
    try:
        return version("mailwright")
    except PackageNotFoundError:
        return "0.1.0"  # run from a checkout, as the README does


@inspect_command()
def mailwright_agent(state: Any, **kwargs: Any) -> dict[str, str]:
    """This worker's versions, for the Agents page (a Celery inspect command, answered like ``stats``)."""
    return {"mailwright": mailwright_version(), "celery": celery.__version__, "python": platform.python_version()}


def group_queue(group: AgentGroup | None) -> str:
    """The queue of ``group`` (None: the default group, served by every worker without ``-Q``)."""
    default = settings.CELERY_TASK_DEFAULT_QUEUE
    if group is None:
        return default
    # Team and group in the name: two teams' groups called "north" are two queues.
    return f"{default}.agents.{group.team.slug}.{slugify(group.name) or group.pk}"


def operation_queue(operation: Operation) -> str:
    return group_queue(operation.agent_group)


@dataclass(frozen=True)
class Agent:
    """One live worker, as it answered the broadcast."""

    name: str  # celery's node name, e.g. north@host1
    host: str
    pid: int | None
    versions: str
    started: datetime | None
    last_heard: datetime
    queues: tuple[str, ...]
    runs_in_progress: tuple[int, ...]


def live_agents() -> list[Agent] | None:
    """Every worker that answers now (cached ``CACHE_SECONDS``); None when the broker cannot say."""
    cached = cache.get(_CACHE_KEY)
    if cached is None:
        cached = {"agents": inspect_workers()}
        cache.set(_CACHE_KEY, cached, CACHE_SECONDS)
    return cached["agents"]


def inspect_workers() -> list[Agent] | None:
    """Ask the workers now, through the app's broker."""
    from designer.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None

    def ask(command: str) -> dict[str, Any]:
        # A connection each: a kombu connection is not to be shared between threads.
        with app.connection_for_read() as own:
            return _merged(app.control.broadcast(command, reply=True, connection=own, timeout=INSPECT_TIMEOUT))

    commands = {"stats": "stats", "queues": "active_queues", "active": "active", "versions": "mailwright_agent"}
    try:
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:  # one broadcast's wait, not four
            futures = {name: pool.submit(ask, command) for name, command in commands.items()}
            answers = {name: future.result() for name, future in futures.items()}
    except Exception:  # noqa: BLE001 - a broker without broadcast (filesystem) or down: status unknown
        return None
    heard = timezone.now()
    agents = []
    for name in sorted(set(answers["stats"]) | set(answers["queues"])):
        stats = answers["stats"].get(name) or {}
        uptime = stats.get("uptime")
        versions = answers["versions"].get(name) or {}
        agents.append(Agent(
            name=name, host=name.partition("@")[2] or name, pid=stats.get("pid"),
            versions=", ".join(f"{k} {v}" for k, v in versions.items()) or "unknown",
            started=heard - timedelta(seconds=uptime) if isinstance(uptime, int | float) else None,
            last_heard=heard,
            queues=tuple(q.get("name", "") for q in answers["queues"].get(name) or []),
            runs_in_progress=tuple(_run_ids(answers["active"].get(name) or [])),
        ))
    return agents


def _merged(replies: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A broadcast's replies ([{node: answer}, ...]) as one {node: answer}, as ``inspect`` gives them."""
    return {node: answer for reply in replies or [] for node, answer in reply.items()}


def _run_ids(tasks: list[dict[str, Any]]) -> list[int]:
    ids = []
    for task in tasks:
        args = task.get("args") or []
        if task.get("name") == "designer.tasks.execute_run" and args and isinstance(args[0], int):
            ids.append(args[0])
    return ids


def serving(queue: str, agents: list[Agent]) -> list[Agent]:
    return [agent for agent in agents if queue in agent.queues]


def waiting_note(operation: Operation) -> str:
    """Why a run of ``operation`` would wait in the queue ("" when a worker of its group is alive or
    the broker cannot tell)."""
    if operation.agent_group is None:
        return ""
    agents = live_agents()
    if agents is None or serving(operation_queue(operation), agents):
        return ""
    return f"no agent of group {operation.agent_group.name} is running; the run waits in the queue"
