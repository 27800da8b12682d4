from designer.models.activities import Activity
from designer.models.agents import AgentGroup
from designer.models.audit import AuditEntry
from designer.models.connections import Connection, ConnectionCheck
from designer.models.operations import Operation, Workflow
from designer.models.runs import Lease, LedgerEntry, Run, RunLog, RunRecord
from designer.models.teams import ROLE_RANK, Membership, Project, Role, Team, validate_object_name
from designer.models.variables import Variable, validate_variable_name
from designer.models.versions import DesignVersion

__all__ = [
    "ROLE_RANK",
    "Activity",
    "AgentGroup",
    "AuditEntry",
    "Connection",
    "DesignVersion",
    "ConnectionCheck",
    "Lease",
    "LedgerEntry",
    "Operation",
    "Run",
    "RunLog",
    "RunRecord",
    "Workflow",
    "Membership",
    "Project",
    "Role",
    "Team",
    "Variable",
    "validate_object_name",
    "validate_variable_name",
]
