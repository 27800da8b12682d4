"""The run's own group writes store what Django's ORM would (on SQLite and on PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from designer.models import LedgerEntry, Run, RunRecord
from designer.running.rows import insert_rows, unsaved, update_rows


def test_inserted_and_updated_rows_read_back_as_the_orm_writes_them(operation):
    run = Run.objects.create(operation=operation, trigger=Run.Trigger.COMMAND)
    rows = [LedgerEntry(connection_id=operation.source.connection_id, operation=operation, scope="INBOX", epoch=7,
                        position=n, identity=f"<m{n}@example.org>", state=LedgerEntry.State.SENDING,
                        out_message_id=f"<out{n}@example.org>", attempts=1) for n in range(60)]
    before = timezone.now()
    insert_rows(rows)
    assert len({row.pk for row in rows}) == 60
    stored = LedgerEntry.objects.get(pk=rows[59].pk)
    assert (stored.position, stored.identity, stored.state, stored.attempts, stored.reply, stored.poison_runs) == (
        59, "<m59@example.org>", "sending", 1, "", 0)
    assert before <= stored.created_at == stored.updated_at <= timezone.now()

    later = before + timedelta(minutes=5)
    for row in rows:
        row.state, row.reply, row.updated_at = LedgerEntry.State.SENT, "250 2.0.0 Ok: queued as Grüße", later
    update_rows(rows, ["state", "reply", "updated_at"])
    assert set(LedgerEntry.objects.values_list("state", "reply", "updated_at")) == {
        ("sent", "250 2.0.0 Ok: queued as Grüße", later)}

    records = [RunRecord(run=run, ledger=rows[0], position=1, subject="Grüße", status=RunRecord.Status.SENT,
                         rendered={"to": "a@example.org", "attachments": [{"filename": "a.txt", "size": 3}]}),
               RunRecord(run=run, ledger=None, position=2, status=RunRecord.Status.SKIPPED, replayed=True)]
    insert_rows(records)
    first, second = RunRecord.objects.order_by("pk")
    assert (first.pk, first.ledger_id, first.subject, first.rendered) == (
        records[0].pk, rows[0].pk, "Grüße", {"to": "a@example.org", "attachments": [{"filename": "a.txt", "size": 3}]})
    assert (second.ledger_id, second.rendered, second.replayed, second.status) == (None, None, True, "skipped")

    insert_rows([RunRecord(run=run, position=3, status=RunRecord.Status.SENT, subject="no key asked")], keys=False)
    assert RunRecord.objects.filter(subject="no key asked", run=run).count() == 1


def test_an_unsaved_row_is_the_one_the_keyword_constructor_makes(operation):
    run = Run.objects.create(operation=operation, trigger=Run.Trigger.COMMAND)
    for model, values in (
        (LedgerEntry, {"connection_id": operation.source.connection_id, "operation_id": operation.pk, "scope": "INBOX",
                       "epoch": 7, "position": 3, "identity": "<m3@example.org>", "attempts": 0}),
        (RunRecord, {"run_id": run.pk, "ledger_id": None, "position": 3, "subject": "Grüße", "status": "sent"}),
    ):
        fast, made = unsaved(model, **values), model(**values)
        fields = [field.attname for field in model._meta.concrete_fields]
        assert [getattr(fast, name) for name in fields] == [getattr(made, name) for name in fields]
        assert fast._state.adding and fast.pk is None
