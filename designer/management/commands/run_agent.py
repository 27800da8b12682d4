import os
import shlex
import sys

from django.core.management.base import BaseCommand
from django.utils.text import slugify

from designer.running.agents import group_queue
from designer.teams.lookup import agent_group_by_name, team_by_name


class Command(BaseCommand):
    help = ("Start a Celery worker that runs the operations of one agent group, and nothing else "
            "(its queue only). Start it where those operations must run, e.g. inside a customer's network.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--group", required=True, help="the agent group's name (the team's Agents page)")
        parser.add_argument("--team", help="the group's team (name or slug), when several teams have the group")
        parser.add_argument("--concurrency", type=int, default=None, metavar="N",
                            help="runs at once (default: Celery's, the number of CPUs)")
        parser.add_argument("--pool", default="prefork", help="Celery's worker pool (default prefork)")
        parser.add_argument("--loglevel", default="INFO")
        parser.add_argument("--print-only", action="store_true",
                            help="print the equivalent celery command line and exit")

    def handle(self, group: str, team: str | None, concurrency: int | None, pool: str, loglevel: str,
               print_only: bool, **options) -> None:
        agent_group = agent_group_by_name(group, team_by_name(team) if team else None)
        queue = group_queue(agent_group)
        # The node name says which group a worker serves, wherever its logs are read.
        args = ["celery", "-A", "designer", "worker", "-Q", queue, "-n", f"{slugify(agent_group.name)}@%h",
                "--pool", pool, "--loglevel", loglevel]
        if concurrency is not None:
            args += ["--concurrency", str(concurrency)]
        self.stdout.write(f"agent group {agent_group.name} (team {agent_group.team.name}), queue {queue}")
        self.stdout.write("equivalent: " + shlex.join(args))
        if print_only:
            return
        self.stdout.flush()
        # The worker takes this process's place: signals from systemd or a terminal reach it directly.
        os.execv(sys.executable, [sys.executable, "-m", *args])  # noqa: S606 - fixed arguments, no shell
