from designer.models.activities import Activity
from designer.models.audit import AuditEntry
from designer.models.connections import Connection, ConnectionCheck
from designer.models.teams import ROLE_RANK, Membership, Project, Role, Team, validate_object_name

__all__ = [
    "ROLE_RANK",
    "Activity",
    "AuditEntry",
    "Connection",
    "ConnectionCheck",
    "Membership",
    "Project",
    "Role",
    "Team",
    "validate_object_name",
]
