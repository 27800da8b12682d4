"""One malloc heap for a run's threads and large blocks returned (glibc), set once a process."""

import platform
import subprocess
import sys

import pytest

from designer.running import memory
from tests.workers import ROOT


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_glibc_keeps_the_threads_to_one_heap_and_returns_large_blocks():
    assert memory.tune_malloc() is True
    assert memory.tune_malloc() is True  # once a process: the answer is kept


def test_a_run_sets_it(world, run_once, monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "tune_malloc", lambda: calls.append(1) or True)
    world.add("m0")
    assert run_once().status == "succeeded"
    assert calls == [1]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_a_large_block_freed_does_not_send_the_next_smaller_ones_to_the_heap():
    # glibc would raise its mapping threshold to each large block freed: after a 1 MB message, the
    # 300 KB ones would come from the heap, which keeps the space (0.6 MB more at the peak of a run).
    # In a process of its own: one that ran much has free heap space, which malloc uses first.
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, cwd=ROOT)

    assert int(probe.stdout) >= 300 * 1024


_PROBE = """
import ctypes, ctypes.util
from designer.running import memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = MallInfo2
memory.tune_malloc()
block = bytearray(1024 * 1024)
del block  # a mapped block given back: glibc's own threshold would now be 1 MB
before = libc.mallinfo2().hblkhd
block = bytearray(300 * 1024)
print(libc.mallinfo2().hblkhd - before)
"""
