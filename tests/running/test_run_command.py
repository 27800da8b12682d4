import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from designer.models import Run


def _run(*args):
    call_command("run_operation", "Forward", "--project", "Support desk", "--team", "Support", *args)


def test_it_runs_inline_and_prints_status_and_counts(world, operation, capsys):
    world.add("hello")
    _run("--inline")
    out = capsys.readouterr().out
    assert "succeeded: 1 read, 1 sent, 0 skipped, 0 failed" in out


def test_it_exits_non_zero_unless_the_run_succeeded(world, operation, capsys):
    world.add("hello")
    world.faults = [("permanent", "550 no")]
    with pytest.raises(CommandError) as exc:
        _run("--inline")
    assert exc.value.returncode == 1
    assert "failed: 1 read, 0 sent, 0 skipped, 1 failed" in capsys.readouterr().out


def test_it_cancels_a_run_no_worker_picks_up(world, operation, capsys):
    # In this test transaction the enqueue-on-commit never fires: exactly a missing worker.
    with pytest.raises(CommandError, match="no worker started run") as exc:
        _run("--pickup", "1")
    assert exc.value.returncode == 2
    assert Run.objects.get().status == "cancelled"


def test_it_names_an_unknown_operation(world, operation):
    with pytest.raises(CommandError, match="no operation 'Nope' in project Support desk"):
        call_command("run_operation", "Nope", "--project", "Support desk", "--team", "Support")


def test_it_refuses_an_invalid_operation_without_creating_a_run(world, operation):
    operation.source = None
    operation.save()
    with pytest.raises(CommandError, match="Forward was not started, it cannot run: source missing") as exc:
        _run("--inline")
    assert exc.value.returncode == 1
    assert not Run.objects.exists()
