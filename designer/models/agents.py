from __future__ import annotations

from django.db import models

from designer.models.teams import Team, validate_object_name


class AgentGroup(models.Model):
    """Workers that run a team's operations somewhere in particular (a customer's network, a region).

    An operation of the group runs only on workers started for it (``manage.py run_agent --group``);
    an operation without a group runs on the default queue, which every plain worker serves.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="agent_groups")
    name = models.CharField(max_length=60, validators=[validate_object_name])
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="agent_group_name_unique_in_team")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
