"""One malloc heap for a run's threads (glibc), set once a process."""

import platform

import pytest

from designer.running import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_glibc_keeps_the_threads_to_one_heap():
    assert memory.keep_to_one_heap() is True
    assert memory.keep_to_one_heap() is True  # once a process: the answer is kept


def test_a_run_sets_it(world, run_once, monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "keep_to_one_heap", lambda: calls.append(1) or True)
    world.add("m0")
    assert run_once().status == "succeeded"
    assert calls == [1]
