"""The collector's settling (doorbell/collector.py): once the service is up, its
start-up objects are out of every collection."""

import subprocess
import sys

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
