from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.functional import cached_property
from django.utils.text import slugify

from designer.crypto import SecretsUnreadable


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    ADMIN = "admin", "Admin"


# Higher ranks include every right of the lower ones.
ROLE_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3}


def validate_object_name(value: str) -> None:
    """Names appear in paths of project files and command lines, so they may not hold / or :."""
    if not value.strip():
        raise ValidationError("Give a name.")
    if "/" in value or ":" in value:
        raise ValidationError("A name may not contain “/” or “:”.")
    if value != value.strip():
        raise ValidationError("A name may not start or end with spaces.")


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[validate_object_name])
    slug = models.SlugField(max_length=100, unique=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            self.slug = unique_slug(self.name)
        super().save(*args, **kwargs)


def unique_slug(name: str) -> str:
    base = slugify(name)[:90] or "team"
    slug, n = base, 2
    while Team.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="one_membership_per_team")]
        ordering = ["team__name"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class Project(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100, validators=[validate_object_name])
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="project_name_unique_in_team")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @cached_property
    def variables(self) -> dict[str, str]:
        """Project variables by name, secret ones decrypted: what templates see as ``vars``.

        Cached on the instance, so a run decrypts them once, not once per message."""
        return {variable.name: variable.get_value() for variable in self.variable_set.all()}

    @cached_property
    def secret_values(self) -> list[str]:
        """The values of the secret variables: what pages and run logs mask (none that no configured key
        decrypts: such a value cannot reach a page or a log either)."""
        values = []
        for variable in self.variable_set.filter(secret=True):
            try:
                values.append(variable.get_value())
            except SecretsUnreadable:
                continue
        return values
