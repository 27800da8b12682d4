"""Large blocks handed back to the system once freed (glibc's malloc), set once a process."""

import platform

import pytest

from designer.running import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_glibc_maps_large_blocks_of_their_own_from_the_first_run_on():
    assert memory.hand_back_large_blocks() is True
    assert memory.hand_back_large_blocks() is True  # once a process: the answer is kept


def test_a_run_sets_it(world, run_once, monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "hand_back_large_blocks", lambda: calls.append(1) or True)
    world.add("m0")
    assert run_once().status == "succeeded"
    assert calls == [1]
