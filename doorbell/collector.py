"""How the service's memory is kept: glibc malloc's settings, and Python's collector.

    allocator.tune()     # once, at start-up: True where glibc took the settings
    allocator.settle()   # once the service is up: its start-up objects are never scanned

A frame is large: 1.4 MB for 1280x720 in I420, 2.8 MB in BGR, and x264 and the
decoder keep buffers of that size too. glibc serves blocks of 128 KiB or more
with their own ``mmap`` and returns them on ``free``, but the first time such a
block is freed it raises that threshold to the block's size (up to 32 MiB), so
from then on every frame comes from the heap or a thread's arena, and the small
objects allocated between frames keep those pages from ever being returned.
Setting the threshold (``mallopt(M_MMAP_THRESHOLD)``, the same as
``MALLOC_MMAP_THRESHOLD_=131072``) turns that adjustment off (glibc
``mallopt(3)``). Each thread that allocates also gets an arena of its own, up to
8 a core; two are enough for a camera thread and the event loop
(``M_ARENA_MAX``).

Measured (issue 13, the service recording porch-visitors.mp4 scaled to 1280x720 at
15 fps with an owner's event stream, a bell every 2 s): resident memory 153 MB
without, 141-146 MB with, the CPU unchanged within the noise. Elsewhere (musl, not
Linux) it does nothing and says so.
"""

import ctypes
import gc

M_MMAP_THRESHOLD = -3  # glibc malloc.h
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024  # bytes: glibc's own default, fixed
ARENA_MAX = 2


def tune() -> bool:
    """Fix glibc's mmap threshold and arena count for this process (see the module).
    Returns True when glibc accepted both, False where there is no ``mallopt`` (not
    glibc) or it refused. Never raises."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own libc, as clock.py does
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(mallopt(M_ARENA_MAX, ARENA_MAX))


def settle() -> int:
    """Move every object alive now into the collector's permanent generation
    (``gc.freeze()``), so a full collection no longer walks them; call once the service
    is up. Returns how many objects were frozen.

    The imports (numpy, OpenCV, PyAV, aiohttp, cryptography) leave about 64,000 objects
    that live as long as the process; a full collection walked them all in 21-29 ms on
    the 2-core x86 VM idle, longer with the camera's threads waiting for the same lock.
    A flood of requests makes full collections frequent, and the bell's event waited for
    them: p99 48-104 ms under 200 event-stream clients (issue 13)."""
    gc.collect()  # what is garbage already is freed, not kept for ever
    gc.freeze()
    return gc.get_freeze_count()
