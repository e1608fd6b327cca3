"""Python's garbage collector, kept out of the bell's way.

    collector.settle()   # once the service is up: its start-up objects are never walked

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

import gc


def settle() -> int:
    """Collect once, then move every object alive into the collector's permanent
    generation (``gc.freeze()``): call once the service is up. Returns how many objects
    are frozen. Objects frozen are never collected, so garbage is collected first."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
