"""Memory kept small, and Python's garbage collector kept out of the bell's way.

    collector.lean_memory()   # first, before any thread: no huge pages, one malloc arena
    collector.settle()        # once the service is up: its start-up objects are never walked

``lean_memory`` holds the service lower for no CPU that shows: the kernel gives this
process no transparent huge pages, and glibc's allocator keeps one arena for all its
threads. Measured with bench/memory_bench.py's service (1280x720 file camera at 15 fps,
an owner watching; medians of 3-4 alternating 75 s runs on the 2-core x86 VM; CPU 6.5-7.5
CPU-s a minute either way, the spread of the runs):

* Huge pages: libx264 asks for them (``madvise``) for its big buffers (three of 2 MiB at
  720p, seen with strace), NumPy for arrays of 4 MiB or more; a 2 MiB page is resident
  whole however little of it is used. Where the kernel gives them
  (``/sys/kernel/mm/transparent_hugepage/enabled`` madvise or always), off held the
  service 2.4-5.6 MB lower (150.1 MB steady against 155.7; 146.6 against 149.0 with the
  muxer's hidden encoder gone). The synthetic camera's 720p frames, made through NumPy
  int16 arrays of 5.5 MB, gained most: 189.2 MB to 165.0 with the three changes at once.
* Arenas: glibc gives each thread that allocates an arena of its own (up to 8 a core),
  and what one thread frees only that arena's threads reuse: the camera thread's and the
  event loop's frame-sized blocks stayed apart. One arena: 143.1 MB against 146.6 (two:
  146.5, no better; one alone, with the hidden encoder still there, within the spread).

A full collection walks every object the collector tracks. The imports (numpy, OpenCV,
PyAV, aiohttp, cryptography) leave about 64,000 that live as long as the process; walking
them took 21-29 ms on the 2-core x86 VM, idle, and longer with the camera's threads
waiting for the same interpreter lock. A flood of requests makes full collections
frequent, and the bell's event waited behind them: p99 48-104 ms under 200 event-stream
clients (issue 13), 27 ms under 1,000 idle connections. Frozen, those objects are left
out of every collection (``gc.freeze``); what is made later is collected as before.

glibc's allocator was tried too: a fixed mmap threshold (``mallopt``) gave back freed
frame-sized blocks and held a 720p recording 7-8 MB lower, but cost 35 % more CPU
(8.1-8.4 CPU-s against 5.6-6.3 in 45 s, alternating runs), so it is not set.
"""

import ctypes
import gc

PR_SET_THP_DISABLE = 41  # <linux/prctl.h>: no transparent huge pages for this process
M_ARENA_MAX = -8  # <malloc.h>: glibc's most arenas
ARENAS = 1


def lean_memory() -> list[str]:
    """No transparent huge pages for this process from now on (``prctl``), and glibc's
    allocator limited to :data:`ARENAS` arena (``mallopt``; threads that have one keep
    it, new ones share). Call first, before the camera's and the web's threads start.
    Returns what was set, in words; on a system without either call (not Linux, not
    glibc), less or nothing. Never raises."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return []
    done = []
    prctl = getattr(libc, "prctl", None)
    if prctl is not None and prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0:
        done.append("no transparent huge pages")
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None and mallopt(M_ARENA_MAX, ARENAS) == 1:
        done.append(f"{ARENAS} malloc arena")
    return done


def settle() -> int:
    """Collect once, then move every object alive into the collector's permanent
    generation (``gc.freeze()``): call once the service is up. Returns how many objects
    are frozen. Objects frozen are never collected, so garbage is collected first."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
