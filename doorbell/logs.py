"""The service's log, bounded: nobody on the network can make it grow faster than a few
lines a minute, however many bad requests or connections they send.

    configure()                     # doorbell run / demo: one line a message, rate-limited

A :class:`RateLimit` filter on the handler lets each kind of message (its logger, level
and format string) through in a burst of :data:`BURST`, then one every
:data:`INTERVAL` seconds; the next line that passes says how many like it were left
out. Every message together also shares a budget (:data:`TOTAL_BURST`, then one every
:data:`TOTAL_INTERVAL` s), for floods of messages that differ. Under systemd the
journal keeps the lines; the figures keep a day's flood under a megabyte.

A request aiohttp's parser refuses (a bad request line, header or body framing: the
client gets a 400) is the client's mistake, not the service's: :class:`BadRequests`
makes aiohttp's ERROR and its traceback (about 550 bytes) one short INFO line.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

BURST = 10  # lines of one kind at once
INTERVAL = 6.0  # then one every 6 s: 10 a minute
TOTAL_BURST = 100  # lines of every kind at once
TOTAL_INTERVAL = 1.0  # then one a second in all
MAX_KINDS = 1024  # kinds remembered; past this the oldest are forgotten
FORMAT = "doorbell: %(message)s"


@dataclass
class Bucket:
    """A token bucket: ``tokens`` left, refilled one per ``interval`` s up to ``burst``."""

    burst: int
    interval: float
    tokens: float
    at: float
    left_out: int = 0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) / self.interval)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.left_out += 1
        return False


class RateLimit(logging.Filter):
    """A handler filter: see the module's docstring. ``clock`` is monotonic seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._kinds: dict[tuple[str, int, str], Bucket] = {}
        self._total = Bucket(TOTAL_BURST, TOTAL_INTERVAL, TOTAL_BURST, clock())
        self.left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        key = (record.name, record.levelno, str(record.msg)[:200])
        bucket = self._kinds.pop(key, None) or Bucket(BURST, INTERVAL, BURST, now)
        self._kinds[key] = bucket  # the most recent last: the oldest are forgotten first
        if len(self._kinds) > MAX_KINDS:
            del self._kinds[next(iter(self._kinds))]
        if not bucket.take(now) or not self._total.take(now):
            self.left_out += 1
            return False
        if bucket.left_out:
            record.msg = f"{record.msg} ({bucket.left_out} more like this left out)"
            bucket.left_out = 0
        return True


class BadRequests(logging.Filter):
    """A filter for the ``aiohttp.server`` logger: a request its parser refused becomes
    ``a bad request from ADDRESS: WHY`` at INFO, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "a bad request from %s: %s", (peer, _short(error))
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _short(error: Exception) -> str:
    text = getattr(error, "message", "") or type(error).__name__
    return str(text).splitlines()[0][:120] if text else type(error).__name__


def configure(level: int = logging.INFO) -> RateLimit:
    """Log to stderr (the journal under systemd), one line a message, rate-limited;
    aiohttp's access log off. Returns the filter (its ``left_out`` count)."""
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(BadRequests())
    limit = RateLimit()
    for handler in logging.getLogger().handlers:
        handler.addFilter(limit)
    return limit
