"""Teams, their members and roles: who may see and change what, and the audit trail."""
