"""Running operations: the engine and its ledger, leases, Celery tasks, schedules, mapping."""
