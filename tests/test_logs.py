"""The log is bounded (doorbell.logs): a flood of one message, or of many, costs a few
lines a minute, and the next line that passes says how many were left out."""

import io
import logging

from doorbell import logs


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def logger_with_limit(clock: Clock) -> tuple[logging.Logger, io.StringIO, logs.RateLimit]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    limit = logs.RateLimit(clock)
    handler.addFilter(limit)
    log = logging.getLogger(f"test.logs.{id(out)}")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return log, out, limit


def test_one_message_repeated_passes_in_a_burst_then_ten_a_minute():
    clock = Clock()
    log, out, limit = logger_with_limit(clock)
    for n in range(10_000):  # 10,000 bad requests in one second
        log.warning("bad request from %s", f"10.0.0.{n % 250}")
    assert out.getvalue().count("\n") == logs.BURST
    assert limit.left_out == 10_000 - logs.BURST
    clock.now += 60.0
    for _ in range(10_000):
        log.warning("bad request from %s", "10.0.0.1")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 * logs.BURST  # a minute refilled the burst, no more
    assert lines[logs.BURST].endswith(f"({10_000 - logs.BURST} more like this left out)")


def test_messages_that_all_differ_share_one_budget():
    clock = Clock()
    log, out, _ = logger_with_limit(clock)
    for n in range(5000):
        log.error(f"failure number {n}")  # a distinct message each time
    assert out.getvalue().count("\n") == logs.TOTAL_BURST
    clock.now += 10 * logs.TOTAL_INTERVAL
    log.error("one more")
    assert out.getvalue().count("\n") == logs.TOTAL_BURST + 1


def test_other_messages_still_get_through_a_flood_of_one():
    clock = Clock()
    log, out, _ = logger_with_limit(clock)
    for _ in range(1000):
        log.warning("refused")
    log.warning("camera: stalled")
    assert out.getvalue().splitlines()[-1] == "camera: stalled"
