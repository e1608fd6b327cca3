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


async def test_a_bad_request_is_one_short_line_without_a_traceback(caplog):
    """aiohttp logs each request its parser refuses at ERROR with a traceback (about 550
    bytes, 7 times what the sender sent); through BadRequests it is one short INFO line."""
    import asyncio

    from aiohttp import web

    from doorbell.web.guard import HANDLER_LIMITS

    server = logging.getLogger("aiohttp.server")
    quiet = logs.BadRequests()
    server.addFilter(quiet)
    runner = web.AppRunner(web.Application(), access_log=None, **HANDLER_LIMITS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sent = 0
    try:
        with caplog.at_level(logging.DEBUG, logger="aiohttp"):
            for line in (b"GET / HTTP/9.9", b"\x16\x03\x01garbage", b"GET /\x00 HTTP/1.1", b"G"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                request = line + b"\r\nHost: x\r\nContent-Length: -1\r\n\r\n"
                writer.write(request)
                sent += len(request)
                await reader.read()  # the 400 and the close
                writer.close()
    finally:
        server.removeFilter(quiet)
        await runner.cleanup()
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(records) == 4
    assert all(r.levelno == logging.INFO and not r.exc_info for r in records)
    assert all(r.getMessage().startswith("a bad request from 127.0.0.1: ") for r in records)
    assert sum(len(r.getMessage()) for r in records) < 2 * sent
