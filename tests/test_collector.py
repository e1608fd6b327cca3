"""The allocator's settings (doorbell/allocator.py): a freed frame-sized block goes
back to the system, where without them glibc keeps it after the first large free."""

import platform
import subprocess
import sys

import pytest

# In a fresh interpreter: free one 8 MiB block (glibc then raises its mmap threshold
# to 8 MiB unless it was set), then take, touch and free 1.5 MiB (a 720p I420 frame)
# and print how much of it is still resident, in KiB.
PROBE = """
import ctypes, sys
from doorbell import allocator
if sys.argv[1] == "tuned":
    assert allocator.tune()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes, libc.free.argtypes = (ctypes.c_size_t,), (ctypes.c_void_p,)
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))
big = libc.malloc(8 << 20); ctypes.memset(big, 1, 8 << 20); libc.free(big)
keep = [libc.malloc(64) for _ in range(64)]
before = rss()
frame = libc.malloc(1536 << 10); ctypes.memset(frame, 1, 1536 << 10)
keep += [libc.malloc(64) for _ in range(64)]  # small objects after it, as a frame's life has
libc.free(frame)
print(rss() - before)
"""


def _kept_kib(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_a_freed_frame_goes_back_to_the_system():
    assert _kept_kib("tuned") < 256  # KiB: the block was its own mmap, unmapped on free


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_without_it_glibc_keeps_the_frame():
    """The probe's baseline: glibc's own adjustment keeps the 1.5 MiB (so the test above
    can fail)."""
    assert _kept_kib("plain") > 1024


def test_tune_says_what_it_did():
    from doorbell import allocator

    assert allocator.tune() is GLIBC


# The CLI's _serve with a stand-in for Service (its run() and url are all _serve uses):
# ready, then stop at once; print how many objects the collector has frozen.
SERVE = """
import gc
from doorbell.cli.serve import _serve
class Up:
    url, tls_fingerprint = "http://localhost:1/", None
    async def run(self, stop, ready):
        self.before = gc.get_freeze_count()
        ready(self)
up = Up()
_serve(up)
print(up.before, gc.get_freeze_count())
"""


def test_the_service_settles_its_start_up_objects_once_it_is_up():
    """A full collection then walks only what was made since (see allocator.settle)."""
    done = subprocess.run([sys.executable, "-c", SERVE], capture_output=True, text=True, check=True)
    before, after = map(int, done.stdout.split()[-2:])
    assert before == 0
    assert after > 1000  # the imports' objects at least


def test_settle_leaves_a_full_collection_nothing_old_to_walk():
    code = (
        "import gc; from doorbell import allocator\n"
        "junk = [[i] for i in range(50000)]\n"
        "frozen = allocator.settle()\n"
        "print(frozen, len(gc.get_objects()))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    frozen, tracked = map(int, done.stdout.split())
    assert frozen > 50000
    assert tracked < 1000  # only what was made after
