"""doorbell/collector.py: once the service is up, its start-up objects are out of every
collection; from its start, no transparent huge pages and one malloc arena."""

import subprocess
import sys

import pytest

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
    """A full collection then walks only what was made since (see collector.settle)."""
    done = subprocess.run([sys.executable, "-c", SERVE], capture_output=True, text=True, check=True)
    before, after = map(int, done.stdout.split()[-2:])
    assert before == 0
    assert after > 1000  # the imports' objects at least


def test_settle_leaves_a_full_collection_nothing_old_to_walk():
    code = (
        "import gc; from doorbell import collector\n"
        "junk = [[i] for i in range(50000)]\n"
        "frozen = collector.settle()\n"
        "print(frozen, len(gc.get_objects()))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    frozen, tracked = map(int, done.stdout.split())
    assert frozen > 50000
    assert tracked < 1000  # only what was made after


# A child that counts glibc's malloc arenas after 4 threads allocated, each at once
# (malloc_info's XML has a <heap nr=...> a arena), with or without lean_memory first.
ARENAS = """
import ctypes, sys, threading
from doorbell import collector
if sys.argv[1] == "lean":
    collector.lean_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.open_memstream.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
start = threading.Barrier(4)
def allocate():
    start.wait()
    libc.free(libc.malloc(4096))
threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
text, size = ctypes.c_char_p(), ctypes.c_size_t()
stream = libc.open_memstream(ctypes.byref(text), ctypes.byref(size))
libc.malloc_info(0, stream)
libc.fclose(stream)
print(ctypes.string_at(text, size.value).count(b"<heap nr="))
"""


def _child(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_lean_memory_keeps_every_thread_in_one_malloc_arena():
    assert int(_child(ARENAS, "default")) > 1  # glibc's own way: an arena a thread
    assert int(_child(ARENAS, "lean")) == 1


def test_lean_memory_turns_transparent_huge_pages_off_for_the_process():
    code = (
        "from doorbell import collector\n"
        "def thp():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('THP_enabled:'):\n"
        "            return line.split()[1]\n"
        "before = thp()\n"
        "said = collector.lean_memory()\n"
        "print(before, thp(), '/'.join(said), sep='|')"
    )
    before, after, said = _child(code).split("|")
    if before != "1":  # None: no such line (before Linux 5.0); 0: off here for everyone
        pytest.skip(f"transparent huge pages are not on for this process to start with ({before})")
    assert (before, after) == ("1", "0")
    assert said == "no transparent huge pages/1 malloc arena"
