"""Push notifications through Apprise, against a real local ntfy-compatible server.

No test sleeps: the notifier's clock and sleep are injected (a retry's wait returns at
once and is recorded); the network is real (loopback), as is Apprise's ntfy service.
"""

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from doorbell.events import BellPressed, EventBus, MotionChanged, PirChanged
from doorbell.notify import (
    Notifier,
    NotifySettings,
    NotifyUrlsError,
    read_url_lines,
    read_urls,
    settings_problem,
)
from doorbell.notify_apprise import check_urls_file, url_problems
from doorbell.notify_text import (
    backoff,
    failure_reason,
    kind_url,
    load_reason,
    notice_text,
    redact,
    to_drop,
    url_host,
    wants_notice,
)
from tests.ntfy_server import NtfyServer

BERLIN = ZoneInfo("Europe/Berlin")
AT = datetime(2026, 11, 30, 14, 2, 10, tzinfo=BERLIN).timestamp()
ON = NotifySettings(enabled=True)


class FakeTime:
    """A wall clock standing still unless a sleep moves it; sleeps are recorded."""

    def __init__(self, now: float = AT) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.during: list[str] = []  # what the notifier said while each sleep began
        self.notifier: Notifier | None = None
        self.on_sleep = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.notifier is not None:
            self.during.append(self.notifier.describe())
        if self.on_sleep is not None:
            await self.on_sleep(len(self.sleeps))
        self.now += seconds


def make(urls, settings=ON, fake=None, **kwargs) -> Notifier:
    fake = fake or FakeTime()
    notifier = Notifier(settings, urls, clock=fake.clock, sleep=fake.sleep, tz=BERLIN, **kwargs)
    fake.notifier = notifier
    return notifier


@contextlib.asynccontextmanager
async def running(notifier: Notifier):
    task = asyncio.create_task(notifier.run())
    try:
        yield notifier
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settled(notifier: Notifier, timeout: float = 10.0, left: int = 0) -> None:
    """Until no more than ``left`` notices wait to be sent."""
    deadline = time.monotonic() + timeout
    while notifier.waiting > left:
        assert time.monotonic() < deadline, notifier.describe()
        await asyncio.sleep(0.005)


@pytest.fixture
async def server():
    server = NtfyServer()
    await server.start()
    yield server
    await server.stop()


# -- what is sent -------------------------------------------------------------------------


async def test_a_ring_is_one_text_notification_without_any_image(server):
    notifier = make([server.url()])
    async with running(notifier):
        notifier.offer(BellPressed(at=AT))
        [got] = await server.wait_for(1)
        await settled(notifier)
    assert (got.topic, got.title, got.message) == (
        "doorbell",
        "Doorbell: ring",
        "Someone rang at 14:02",
    )
    assert not got.attachment and got.method == "POST"
    assert got.headers.get("X-Priority") == "high" and got.headers.get("X-Tags") == "bell"
    assert set(got.fields) == {"topic", "title", "message"}  # nothing else: no icon, no link
    assert len(server.requests) == 1
    assert notifier.describe() == "sent 1, last at 14:02; 0 waiting"


async def test_motion_is_not_pushed_unless_the_owner_asks(server):
    notifier = make([server.url()])
    async with running(notifier):
        notifier.offer(MotionChanged(at=AT, active=True))
        notifier.offer(PirChanged(at=AT, active=True))
        notifier.offer(BellPressed(at=AT + 5))
        await server.wait_for(1)
        await settled(notifier)
    assert [r.title for r in server.requests] == ["Doorbell: ring"]


async def test_motion_when_configured_is_told_apart_from_a_ring_and_never_after_one(server):
    notifier = make([server.url()], NotifySettings(enabled=True, motion=True))
    async with running(notifier):
        for event in [
            MotionChanged(at=AT, active=True),  # pushed
            MotionChanged(at=AT + 10, active=False),
            MotionChanged(at=AT + 20, active=True),  # a minute has not passed: not pushed
            BellPressed(at=AT + 30),  # pushed
            PirChanged(at=AT + 40, active=True),  # the visitor was announced by the ring
            PirChanged(at=AT + 200, active=True),  # pushed
        ]:
            notifier.offer(event)
        got = await server.wait_for(3)
        await settled(notifier)
    assert [(r.title, r.message) for r in got] == [
        ("Doorbell: motion", "Motion at the door at 14:02"),
        ("Doorbell: ring", "Someone rang at 14:02"),
        ("Doorbell: motion", "Motion at the door at 14:05"),
    ]
    assert [(r.headers.get("X-Priority"), r.headers.get("X-Tags")) for r in got] == [
        (None, "walking"),
        ("high", "bell"),
        (None, "walking"),
    ]
    assert len(server.requests) == 3 and not any(r.attachment for r in got)


async def test_the_page_address_is_added_only_when_links_are_on(server):
    settings = NotifySettings(enabled=True, link=True)
    notifier = make([server.url()], settings, base_url="https://doorbell.lan:8443/")
    async with running(notifier):
        notifier.offer(BellPressed(at=AT))
        [got] = await server.wait_for(1)
    assert got.message == "Someone rang at 14:02\nhttps://doorbell.lan:8443/"


async def test_the_owners_own_ntfy_priority_and_tags_are_kept(server):
    notifier = make([server.url(priority="max", tags="door")])
    async with running(notifier):
        notifier.offer(BellPressed(at=AT))
        [got] = await server.wait_for(1)
    assert (got.headers.get("X-Priority"), got.headers.get("X-Tags")) == ("max", "door")


def test_texts_are_local_24_hour_times():
    summer = datetime(2026, 7, 1, 21, 7, tzinfo=BERLIN).timestamp()
    assert notice_text("ring", summer, tz=BERLIN) == ("Doorbell: ring", "Someone rang at 21:07")
    chicago = notice_text("motion", summer, tz=ZoneInfo("America/Chicago"))
    assert chicago == ("Doorbell: motion", "Motion at the door at 14:07")


async def test_no_time_is_told_while_the_clock_is_not_set(server):
    fake = FakeTime()
    notifier = Notifier(
        ON, [server.url()], clock=fake.clock, sleep=fake.sleep, synchronised=lambda: False
    )
    async with running(notifier):
        notifier.offer(BellPressed(at=3600.0))  # 1970: the Pi has not heard from NTP yet
        [got] = await server.wait_for(1)
    assert got.message == "Someone rang"


def test_what_each_event_asks_for():
    def wants(event, bell=True, motion=False, last_ring=None, last_motion=None):
        return wants_notice(
            event, bell=bell, motion=motion, last_ring=last_ring, last_motion=last_motion
        )

    assert wants(BellPressed(AT)) == "ring"
    assert wants(BellPressed(AT), bell=False) is None
    assert wants(MotionChanged(AT, True)) is None
    assert wants(MotionChanged(AT, True), motion=True) == "motion"
    assert wants(MotionChanged(AT, False), motion=True) is None
    assert wants(PirChanged(AT, True), motion=True, last_ring=AT - 59) is None
    assert wants(PirChanged(AT, True), motion=True, last_motion=AT - 59) is None
    assert (
        wants(PirChanged(AT, True), motion=True, last_ring=AT - 61, last_motion=AT - 61) == "motion"
    )


def test_the_host_of_a_url():
    assert url_host("ntfy://user:pw@NAS.lan:8080/door") == "nas.lan"
    assert url_host("json://[::1]:8080/hook") == "::1"
    assert url_host("ntfy://[bad/x") == ""


def test_kind_urls_add_only_what_the_owner_did_not_set():
    assert kind_url("ntfy://nas/d", "ring") == "ntfy://nas/d?priority=high&tags=bell"
    assert kind_url("ntfys://nas/d?xtags=a", "ring") == "ntfys://nas/d?xtags=a&priority=high"
    assert (
        kind_url("ntfy://nas/d?priority=low", "motion") == "ntfy://nas/d?priority=low&tags=walking"
    )
    assert kind_url("mailtos://u:p@example.org", "ring") == "mailtos://u:p@example.org"


# -- failures, retries, the queue ---------------------------------------------------------


def test_backoff_doubles_from_2_s_to_5_minutes():
    assert [backoff(n) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff(1000) == 300


async def test_a_failing_endpoint_is_retried_with_backoff_then_delivers(server):
    fake = FakeTime()
    notifier = make([server.url()], fake=fake)
    server.fail(500, times=3)
    async with running(notifier):
        notifier.offer(BellPressed(at=AT))
        [got] = await server.wait_for(1)
        await settled(notifier)
    assert fake.sleeps == [2, 4, 8]
    assert [r.status for r in server.requests] == [500, 500, 500, 200]
    assert got.message == "Someone rang at 14:02"
    assert fake.during[0] == "failing: ntfy: HTTP 500; retry in 2 s; 1 waiting"
    assert not notifier.failing  # sent since
    assert fake.during[2] == "failing: ntfy: HTTP 500; retry in 8 s; 1 waiting"
    assert notifier.describe() == "sent 1, last at 14:02; 0 waiting"


async def test_a_refused_connection_is_retried_until_the_server_is_back(server):
    fake = FakeTime()
    notifier = make([server.url()], fake=fake)
    await server.stop()

    async def back_after_two(count):
        failing.append(notifier.failing)
        if count == 2:
            await server.start()

    failing: list[bool] = []
    fake.on_sleep = back_after_two
    async with running(notifier):
        notifier.offer(BellPressed(at=AT))
        notifier.offer(BellPressed(at=AT + 60))
        got = await server.wait_for(2)
        await settled(notifier)
    assert fake.sleeps == [2, 4]
    assert fake.during[1] == "failing: ntfy: cannot connect; retry in 4 s; 2 waiting"
    assert failing == [True, True] and not notifier.failing
    assert [r.message for r in got] == ["Someone rang at 14:02", "Someone rang at 14:03"]
    assert len(server.requests) == 2


async def test_a_notice_is_given_up_after_its_tries_and_the_next_goes(server):
    fake = FakeTime()
    notifier = make([server.url()], fake=fake, tries=3)
    server.fail(500, times=3)
    async with running(notifier):
        notifier.offer(BellPressed(at=AT))
        notifier.offer(BellPressed(at=AT + 60))
        [got] = await server.wait_for(1)
        await settled(notifier)
    assert fake.sleeps == [2, 4]
    assert got.message == "Someone rang at 14:03" and len(server.requests) == 4
    assert notifier.counts() == {"sent": 1, "dropped": 0, "given_up": 1, "waiting": 0}
    assert notifier.describe().endswith("0 waiting; 1 given up")


def test_a_full_queue_drops_motion_before_rings():
    assert to_drop(["ring"] * 3, "ring", 4) is None
    assert to_drop(["ring", "motion", "motion", "ring"], "ring", 4) == 1
    assert to_drop(["ring"] * 4, "motion", 4) == -1
    assert to_drop(["ring"] * 4, "ring", 4) == 0


async def test_the_queue_is_bounded_and_a_ring_is_kept_over_motion(server):
    notifier = make([server.url()], NotifySettings(enabled=True, motion=True), bound=32)
    for i in range(10):  # motion an hour apart, so none is quietened
        notifier.offer(MotionChanged(at=AT + 3600 * i, active=True))
    for i in range(30):
        notifier.offer(BellPressed(at=AT + 36000 + 60 * i))
    assert notifier.counts() == {"sent": 0, "dropped": 8, "given_up": 0, "waiting": 32}
    notifier.offer(MotionChanged(at=AT + 100_000, active=True))  # rings only after this
    for i in range(3):
        notifier.offer(BellPressed(at=AT + 110_000 + 60 * i))
    assert notifier.counts()["dropped"] == 8 + 1 + 2 + 1 and notifier.waiting == 32
    assert notifier.describe() == "sent 0; 32 waiting; 12 dropped"
    async with running(notifier):
        got = await server.wait_for(32, timeout=15)
    assert [r.title for r in got] == ["Doorbell: ring"] * 32
    assert got[0].message == "Someone rang at 00:03"  # the oldest ring (00:02) went


async def test_a_failing_notifier_never_holds_up_the_bus_or_other_listeners(server):
    loop = asyncio.get_running_loop()
    bus = EventBus(loop)
    stream = bus.subscribe()  # as a browser tab's event stream does
    notifier = make([server.url()])
    server.stall()  # the service accepts and never answers
    async with running(notifier):
        follower = asyncio.create_task(notifier.follow(bus.subscribe()))
        publish_times, loop_delays = [], []
        for i in range(20):
            started = time.perf_counter()
            bus.publish(BellPressed(at=AT + i))
            publish_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            loop_delays.append(time.perf_counter() - started - 0.005)
            assert loop_delays[-1] < 0.25, loop_delays  # a blocked loop would wait for ever
        assert stream.queue.qsize() == 20 and stream.dropped == 0
        assert [(await stream.get()).at for _ in range(20)] == [AT + i for i in range(20)]
        assert notifier.waiting == 20 and server.requests == []
        assert max(publish_times) < 0.002, publish_times
        server.release()
        got = await server.wait_for(20)
        follower.cancel()
    assert [r.message for r in got][:2] == ["Someone rang at 14:02"] * 2


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.name}: {record.getMessage()}")


async def test_one_stuck_service_does_not_hold_up_another(server):
    stuck = NtfyServer()
    await stuck.start()
    stuck.stall()
    notifier = make([stuck.url("a"), server.url("b")])
    try:
        async with running(notifier):
            notifier.offer(BellPressed(at=AT))
            notifier.offer(BellPressed(at=AT + 60))
            got = await server.wait_for(2)
            await settled(notifier, left=2)  # the second answer on its way back
            assert stuck.requests == [] and notifier.waiting == 2
            assert (
                notifier.describe()
                == "ntfy: sent 0; 2 waiting | ntfy: sent 2, last at 14:02; 0 waiting"
            )
            stuck.release()
            await stuck.wait_for(2)
    finally:
        await stuck.stop()
    assert [r.message for r in got] == ["Someone rang at 14:02", "Someone rang at 14:03"]


async def test_apprise_log_lines_never_reach_the_doorbells_log(server):
    root, lines = logging.getLogger(), Lines()  # where the doorbell's log goes (doorbell.logs)
    root.addHandler(lines)
    level, root.level = root.level, logging.DEBUG
    fake = FakeTime()
    try:
        notifier = make([server.url(token="tk_s3cretT0ken42")], fake=fake)
        server.fail(500, times=1)
        async with running(notifier):
            notifier.offer(BellPressed(at=AT))
            [got] = await server.wait_for(1)
    finally:
        root.removeHandler(lines)
        root.level = level
    assert got.headers["Authorization"] == "Bearer tk_s3cretT0ken42"  # it was sent, to ntfy
    assert "doorbell.notify: notify: ntfy (URL 1): HTTP 500; retry in 2 s" in lines.lines
    assert not [line for line in lines.lines if line.startswith("apprise")]
    assert "s3cret" not in "".join(lines.lines + fake.during)


def test_failure_reasons_never_quote_apprise():
    assert (
        failure_reason(["Failed … 'doorbell': internal server error, error=50001."]) == "HTTP 500"
    )
    assert failure_reason(["Failed to send: Not Found - error=404."]) == "HTTP 404"
    assert (
        failure_reason(["A Connection error occurred sending ntfy:http://h/x"]) == "cannot connect"
    )
    assert failure_reason(["tk_secret something odd"]) == "failed"


# -- the URL file and its checks ------------------------------------------------------------


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_url_file_gives_urls_by_line(tmp_path):
    path = write(
        tmp_path / "urls",
        "# mine\n\nntfy://nas.lan/door\n  # off: gotify://x/y\nmatrixs://u:p@m.org/#r\n",
    )
    assert read_url_lines(path) == {3: "ntfy://nas.lan/door", 5: "matrixs://u:p@m.org/#r"}
    assert read_urls(path) == ["ntfy://nas.lan/door", "matrixs://u:p@m.org/#r"]


def test_a_url_file_others_can_read_is_refused_by_name(tmp_path):
    path = write(tmp_path / "notify.urls", "ntfy://user:hunter2@nas.lan/door\n", 0o644)
    with pytest.raises(NotifyUrlsError) as caught:
        read_urls(path)
    message = str(caught.value)
    assert str(path) in message and "0644" in message and f"chmod 600 {path}" in message
    assert "hunter2" not in message
    assert isinstance(caught.value, ValueError)
    assert read_urls(write(tmp_path / "empty", "", 0o644)) == []


def test_a_bad_line_is_named_by_number_without_its_text(tmp_path):
    path = write(tmp_path / "urls", "ntfy://nas.lan/door\n# c\nuser:hunter2@nas.lan\n")
    with pytest.raises(NotifyUrlsError, match=r"urls line 3: not a URL") as caught:
        read_urls(path)
    assert "hunter2" not in str(caught.value)
    path = write(tmp_path / "two", "ntfy://nas.lan/a hunter2\n")
    with pytest.raises(NotifyUrlsError, match="two line 1: more than one word"):
        read_urls(path)
    with pytest.raises(NotifyUrlsError, match="not found"):
        read_urls(tmp_path / "missing")
    (tmp_path / "bin").write_bytes(b"ntfy://a/b\n\xff\n")
    (tmp_path / "bin").chmod(0o600)
    with pytest.raises(NotifyUrlsError, match="bin line 2: not UTF-8"):
        read_urls(tmp_path / "bin")


def test_url_problems_name_line_and_service_never_a_secret():
    problems = url_problems(
        {
            2: "ntfyy://nas.lan/door",
            4: "tgram://badtokenhunter2/123",
            6: "ntfy://nas.lan/door",
            7: "gotify://user:passhunter3@nas.lan",
            8: "discord://idhunter4/",
            9: "ntfy://user:passhunter5@nas.lan/door/bad%20hunter6!",
        }
    )
    assert problems == [
        "line 2: ntfyy: not a service Apprise knows",
        "line 4: tgram: Apprise cannot use it: Unparseable Telegram URL",
        "line 7: gotify: Apprise cannot use it: An invalid Gotify Token (None) was specified; "
        "Could not load Gotify URL",
        "line 8: discord: Apprise cannot use it: An invalid Discord Webhook Token (None) was "
        "specified; Could not load Discord URL",
        "line 9: ntfy: A specified ntfy topic (***) is invalid and will be ignored",
    ]
    assert url_problems(["ntfy://nas.lan/door", "json://nas.lan/hook"]) == []
    assert url_problems(["nope://x"]) == ["URL 1: nope: not a service Apprise knows"]


def test_an_ntfy_url_without_a_topic_is_refused_before_any_ring():
    """Apprise takes ``ntfy://`` with no topic and then fails every send with no reason
    given (found trying ``demo --notify``): it is refused up front, never quoting the
    URL's token; a hosted topic alone (``ntfy://mytopic``, to ntfy.sh) is fine."""
    problems = url_problems(
        ["ntfy://", "ntfys://tk_SECRET123@ntfy.sh/", "ntfy://127.0.0.1:18090", "ntfy://mytopic"]
    )
    assert problems == [
        "URL 1: ntfy: no topic to send to (add one: ntfy://HOST[:PORT]/TOPIC)",
        "URL 2: ntfys: no topic to send to (add one: ntfys://HOST[:PORT]/TOPIC)",
        "URL 3: ntfy: no topic to send to (add one: ntfy://HOST[:PORT]/TOPIC)",
    ]


def test_apprises_reasons_are_made_safe():
    url = "gotify://user:passhunter3@nas.lan/tokenhunter4"
    said = ["Could not load Gotify URL: gotify://user:p...3@nas.lan/t...4", "Bad (tokenhunter4)."]
    assert load_reason(said, url) == "Could not load Gotify URL; Bad (***)"


def test_config_check_names_the_file(tmp_path):
    path = write(tmp_path / "urls", "# x\nntfyy://nas.lan/door\n")
    assert check_urls_file(path) == [
        f"notify URLs file {path} line 2: ntfyy: not a service Apprise knows"
    ]
    assert check_urls_file(write(tmp_path / "ok", "ntfy://nas.lan/door\n")) == []
    assert "no URLs" in check_urls_file(write(tmp_path / "none", "# nothing\n"))[0]


def test_settings_need_an_absolute_urls_file_when_enabled():
    assert settings_problem(NotifySettings()) is None
    assert settings_problem(NotifySettings(enabled=True)).startswith("urls_file: needed")
    assert settings_problem(NotifySettings(urls_file="notify.urls")).startswith(
        "urls_file: must be an absolute path"
    )
    assert settings_problem(NotifySettings(enabled=True, urls_file="/etc/doorbell/n")) is None


def test_redact_removes_every_secret_part():
    url = "ntfy://user:pa%24s@host:8080/topic?token=tk_abc&priority=high#frag"
    text = redact("x user pa$s pa%24s topic tk_abc frag host 8080 ntfy", url)
    assert text == "x *** *** *** *** *** *** *** *** ntfy"


def test_importing_the_notifier_does_not_import_apprise():
    code = "import sys, doorbell.notify; print('apprise' in sys.modules, 'requests' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )  # fmt: skip
    assert done.stdout.split() == ["False", "False"]
