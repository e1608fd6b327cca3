"""The composition root: the real service with a synthetic camera and gpiozero's mock pins."""

import asyncio
import dataclasses
import io
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import av
import pytest
from gpiozero.pins.mock import MockFactory

from doorbell import trigger, vault
from doorbell.camera import CameraError
from doorbell.camera.synthetic import SyntheticCamera
from doorbell.camera_loop import camera_healthy, reconnect_delay
from doorbell.clock import ClockState
from doorbell.config import Config, StorageSettings, WebSettings
from doorbell.owners import SetupCode
from doorbell.pipeline import PipelineSettings
from doorbell.service import Service
from doorbell.store import VIDEO, ClipStore, Keyring
from doorbell.systemd import Notifier
from tests.conftest import decodable_frames, find_plaintext
from tests.owners import PairedOwner, pair_owner


def config_for(data_dir, **policy) -> Config:
    rules = trigger.Policy(**{"pre_roll": 1.0, "post_roll": 30.0, "motion_starts": False} | policy)
    return dataclasses.replace(
        Config(),
        pipeline=PipelineSettings(policy=rules),
        storage=StorageSettings(data_dir=str(data_dir), min_free_mb=0),
        web=WebSettings(listen="127.0.0.1:0", tls="off"),
    )


class ScriptedCamera(SyntheticCamera):
    """The synthetic camera, as fast as it renders, doing ``script[n]()`` before frame n
    and ``each(n)`` before every frame (for an action that waits on something else: the
    frames come as fast as the machine makes them, so a count of frames is no clock)."""

    def __init__(self, script: dict, each: Callable[[int], None] | None = None) -> None:
        super().__init__(width=320, height=180, fps=15.0, visitors=())
        self.script, self.each = script, each

    def frames(self):
        for frame in super().frames():
            action = self.script.get(frame.index)
            if action is not None:
                action()
            if self.each is not None:
                self.each(frame.index)
            yield frame


async def test_stop_finishes_the_clip_being_recorded(data_dir, identities):
    """The bell starts a clip with a 30 s post-roll; stopping the service finishes it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    seen = {}

    def check_and_stop() -> None:
        seen["recording"] = service.pipeline.recorder.recording
        seen["led"] = service.pins.led.value  # law 8: recording, so the LED is on
        loop.call_soon_threadsafe(stop.set)

    camera = ScriptedCamera({30: lambda: service.press_mock_bell(), 60: check_and_stop})
    pins = MockFactory()
    service = Service(config_for(data_dir), demo=True, open_cam=lambda: camera, pin_factory=pins)
    await asyncio.wait_for(service.run(stop), 60)
    assert seen == {"recording": True, "led": 1}
    led = pins.pin(service.config.gpio.led_pin)
    assert led.state == 0 and not service.pipeline.recorder.recording  # off once it finished
    store = ClipStore.open(data_dir)
    [clip] = store.list()
    assert clip.trigger == "bell" and clip.state == "complete"
    with vault.open_file(store.path(clip.id, VIDEO), identities) as reader:
        mp4 = reader.read()
    with av.open(io.BytesIO(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 30  # 1 s pre-roll and 1 s after
    store.close()
    assert find_plaintext(data_dir, mp4) == []


def stop_with_sigterm(process: subprocess.Popen, timeout: float) -> str:
    """SIGTERM ``process``, which must exit 0 within ``timeout`` seconds; its stderr."""
    try:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=timeout) == 0
    finally:
        process.kill()
        process.wait()
    return process.stderr.read()


def demo_until_sigterm(*options: str, check=lambda lines: None) -> list[str]:
    """`doorbell demo --port 0 OPTIONS` as a process: its first three lines (``check``
    looks at them while it runs), then SIGTERM, which must end it with 0, no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "doorbell", "demo", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        check(lines)
    except BaseException:
        process.kill()
        process.wait()
        raise
    assert "Traceback" not in stop_with_sigterm(process, timeout=20)
    return lines


@pytest.mark.cli
def test_sigterm_stops_the_demo_cleanly(tmp_path):
    """`doorbell demo` as a process: it prints the URL and the setup code to pair with,
    serves, and SIGTERM ends it with 0."""
    lines = demo_until_sigterm("--data-dir", str(tmp_path / "data"))
    assert lines[0].startswith("doorbell: open http://localhost:"), lines
    code = SetupCode(tmp_path / "data").read()
    assert code and code in "".join(lines)


@pytest.mark.cli
def test_the_demo_removes_its_temporary_data_dir():
    """Without --data-dir the demo records into a temporary folder, says so, and removes it
    when it stops: nothing is left behind in /tmp."""
    folders: list[Path] = []

    def in_use(lines: list[str]) -> None:
        [line] = [line for line in lines if line.startswith("doorbell: data dir: ")]
        assert "(removed when the demo stops; --data-dir D keeps it)" in line
        folders.append(Path(line.split()[3]))
        assert (folders[0] / "setup-code").exists()

    demo_until_sigterm(check=in_use)
    assert folders and not folders[0].exists()


def test_the_demo_takes_a_configs_pipeline_and_keeps_its_own_camera(tmp_path):
    """``doorbell demo --config FILE``: a tinkerer tries the file's motion, masks, trigger,
    turn and web settings on the demo's synthetic camera, on its own data dir and
    address; what it does not take from the file it names."""
    from doorbell.cli.serve import demo_config, demo_ignores, demo_mqtt
    from doorbell.config import load_config

    path = tmp_path / "doorbell.toml"
    path.write_text(
        '[camera]\nbackend = "picamera2"\nwidth = 1920\nrotation = 180\n'
        "[trigger]\npre_roll_fps = 5\npost_roll = 7\n"
        '[web]\nlisten = "0.0.0.0:443"\nlive_fps = 5\n'
        '[storage]\ndata_dir = "/srv/doorbell"\n'
    )
    base = load_config(path)
    assert demo_ignores(base) == "[camera] width; [storage] data_dir; [web] listen"
    assert demo_ignores(load_config(None)) == ""
    config = demo_config(base, str(tmp_path / "d"), 8099, None, demo_mqtt(None))
    assert config.pipeline.policy.pre_roll_fps == 5 and config.pipeline.policy.post_roll == 7
    assert (config.camera.backend, config.camera.rotation) == ("synthetic", 180)
    assert config.web.listen == "127.0.0.1:8099" and config.web.tls == "off"
    assert config.web.live_fps == 5  # the rest of [web] is the file's
    assert config.storage.data_dir == str(tmp_path / "d") and config.storage.min_free_mb == 0
    assert not config.mqtt.enabled and not config.notify.enabled


@pytest.mark.cli
@pytest.mark.parametrize("bad", ["config", "source"])
def test_the_demo_names_a_bad_config_or_source_and_stops(tmp_path, bad):
    """A config with a bad value, a --source that is not video: one line naming the file,
    a failing exit, and nothing made in the data dir (not even the setup code)."""
    path = tmp_path / ("mine.toml" if bad == "config" else "notes.mp4")
    path.write_text("[trigger]\npre_roll_fps = 100\n" if bad == "config" else "shopping list\n")
    data = tmp_path / "data"
    demo = [sys.executable, "-m", "doorbell", "demo", "--port", "0", "--data-dir", str(data)]
    done = subprocess.run(
        [*demo, f"--{bad}", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert str(path) in done.stderr, done.stderr
    said = "[trigger] pre_roll_fps" if bad == "config" else "not a video file"
    assert said in done.stderr and not data.exists(), done.stderr


def poll(condition, deadline: float):
    """The condition's first true value. For a process that runs in real time: it checks
    every 20 ms and fails at the deadline; no test passes by waiting."""
    import time

    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{condition.__name__}: still false after {deadline} s")


class DyingCamera(ScriptedCamera):
    """A camera that breaks after ``frames`` frames, as a USB camera pulled out does."""

    def __init__(self, frames: int, script: dict | None = None) -> None:
        super().__init__(script or {})
        self.limit = frames

    def frames(self):
        for frame in super().frames():
            if frame.index == self.limit:
                raise CameraError("the camera stopped delivering frames")
            yield frame


def test_reconnect_backoff_doubles_to_a_30_second_cap():
    """0.5, 1, 2 … seconds between attempts, never more than 30."""
    assert [reconnect_delay(n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert reconnect_delay(10_000) == 30


def test_the_watchdog_is_fed_only_while_frames_arrive_or_a_reconnect_is_under_way():
    """Healthy: a frame in the last 10 s, or a reconnect attempt in the last 40 s (attempts
    come at most 30 s apart); a camera stuck in its driver, frames or opening, is not."""
    assert camera_healthy(now=105.0, alive_at=100.0, reconnecting=False)
    assert not camera_healthy(now=111.0, alive_at=100.0, reconnecting=False)
    assert camera_healthy(now=139.0, alive_at=100.0, reconnecting=True)
    assert not camera_healthy(now=141.0, alive_at=100.0, reconnecting=True)


async def test_a_dying_camera_is_reopened_with_backoff_and_its_clip_finished(data_dir, identities):
    """Opening fails twice, then the camera dies mid-clip: the clip is finished, the service
    waits 0.5, 1, then 0.5 s again (frames had come), says so in STATUS=, and goes on."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    waits: list[float] = []
    states: list[str] = []
    opened = []

    def open_cam():
        opened.append(len(opened))
        if len(opened) <= 2:
            raise CameraError("no camera at /dev/video0")
        if len(opened) == 3:
            return DyingCamera(45, {15: lambda: service.press_mock_bell()})
        return ScriptedCamera({5: lambda: loop.call_soon_threadsafe(stop.set)})

    class Recording(Notifier):
        def send(self, **fields):
            if "STATUS" in fields and "READY" not in fields:
                states.append(fields["STATUS"])
            return True

    service = Service(
        config_for(data_dir),
        demo=True,
        open_cam=open_cam,
        pin_factory=MockFactory(),
        wait=waits.append,
        notifier=Recording("/run/systemd/notify"),
        clock_state=lambda: ClockState(True, "boot", 100.0),  # no clock note in STATUS=
    )
    await asyncio.wait_for(service.run(stop), 60)
    assert waits == [0.5, 1.0, 0.5]
    # The camera's own status lines, in their order (READY repeats whichever line is
    # current when the pages come up, as the camera thread and the loop race: left out).
    reconnects = [s for s in states if s.startswith("camera reconnecting")]
    assert [s.split(":")[0] for s in reconnects] == [
        "camera reconnecting in 0.5 s (attempt 1)",
        "camera reconnecting in 1 s (attempt 2)",
        "camera reconnecting in 0.5 s (attempt 1)",
    ]
    assert reconnects[0].endswith(": no camera at /dev/video0")
    assert reconnects[2].endswith(": the camera stopped delivering frames")
    recording = states.index("camera running; recording")
    assert states.index(reconnects[1]) < recording < states.index(reconnects[2])
    store = ClipStore.open(data_dir)
    [clip] = store.list()
    assert clip.trigger == "bell" and clip.state == "complete"  # finished when the camera died
    with vault.open_file(store.path(clip.id, VIDEO), identities) as reader:
        mp4 = reader.read()
    with av.open(io.BytesIO(mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 30  # 1 s pre-roll, then to frame 44
    store.close()


def test_watchdog_tick_follows_the_camera(data_dir):
    """With an injected clock: pinged while frames are fresh or a reconnect runs, not after."""
    now = [1000.0]
    pings = []

    class Counting(Notifier):
        def send(self, **fields):
            pings.append(fields)
            return True

    service = Service(
        config_for(data_dir),
        monotonic=lambda: now[0],
        notifier=Counting("/run/systemd/notify", watchdog=30.0),
        open_cam=lambda: None,
    )
    assert service.watchdog_tick()  # starting: opening the camera counts as reconnecting
    service.camera.reconnecting = False
    service.camera.alive_at = 1000.0
    now[0] = 1009.0
    assert service.watchdog_tick()
    now[0] = 1011.0
    assert not service.watchdog_tick()  # stuck: systemd will restart the service
    assert pings == [{"WATCHDOG": "1"}, {"WATCHDOG": "1"}]


def demo_recording(
    data: Path,
    bell: bool = True,
    command: tuple[str, ...] = (sys.executable, "-m", "doorbell"),
) -> tuple[subprocess.Popen, Path | None, PairedOwner]:
    """`doorbell demo` as a process (``command`` runs the doorbell command) with an owner
    paired beforehand and signed in over HTTP (login by challenge), the camera running,
    the bell pressed, and its clip grown to three chunks on disk (in real time). Returns
    the process, the clip's ``.part`` (None with ``bell=False``: idle, camera running) and
    the owner (whose identity opens the clips)."""
    import base64
    import http.cookiejar
    import json
    import urllib.request

    from doorbell.vault.stream import SEALED_CHUNK_SIZE

    owner = pair_owner(data)
    process = subprocess.Popen(
        [*command, *("demo", "--port", "0", "--data-dir", str(data))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().split()[2].removesuffix("setup")
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

        def post(path: str, body: dict, headers: dict | None = None) -> dict:
            request = urllib.request.Request(
                url + path.lstrip("/"),
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            with opener.open(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")

        challenge = post("/api/login/challenge", {"owner": owner.id})
        nonce = vault.decrypt_bytes(base64.b64decode(challenge["file"]), [owner.identity])
        answer = {"challenge": challenge["challenge"], "answer": base64.b64encode(nonce).decode()}
        csrf = post("/api/login", answer)["csrf_token"]

        def camera_running() -> bool:
            with opener.open(url + "api/status", timeout=30) as response:
                return json.loads(response.read())["camera"] == "running"

        poll(camera_running, deadline=60)
        if not bell:
            return process, None, owner
        post("/api/bell", {}, {"X-CSRF-Token": csrf})
        folder = data / "clips"

        def grown() -> Path | None:
            parts = list(folder.glob("*.mp4.age.part"))
            return parts[0] if parts and parts[0].stat().st_size > 3 * SEALED_CHUNK_SIZE else None

        return process, poll(grown, deadline=60), owner
    except BaseException:
        process.kill()
        process.wait()
        raise


@pytest.mark.cli
def test_sigterm_while_recording_finishes_the_clip_and_exits_0_within_5_s(tmp_path):
    """SIGTERM mid-clip: the clip is finished (a whole age file, nothing partial) and the
    process exits 0 within systemd's 5 s."""
    data = tmp_path / "data"
    process, _, owner = demo_recording(data)
    assert "Traceback" not in stop_with_sigterm(process, timeout=5)
    store = ClipStore.open(data)
    assert store.report.partial == []
    clips = store.list()
    assert [c.state for c in clips] == ["complete"] * len(clips)
    [clip] = [c for c in clips if c.trigger == "bell"]
    with vault.open_file(store.path(clip.id, VIDEO), [owner.identity]) as reader:
        assert decodable_frames(reader.read()) > 10
    store.close()


@pytest.mark.cli
def test_sigkill_mid_clip_loses_at_most_the_chunk_being_written(tmp_path):
    """`doorbell demo` killed with SIGKILL while recording: the next start keeps the cut
    clip as it is (the device cannot decrypt it, and does not need to), marked partial;
    the owner's identity gets back every whole chunk that was on disk, and it plays."""
    from doorbell.store.fragments import Trimmed, trim
    from doorbell.vault.stream import CHUNK_SIZE, SEALED_CHUNK_SIZE

    data = tmp_path / "data"
    process, part, owner = demo_recording(data)
    try:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        on_disk = part.stat().st_size
    finally:
        process.kill()
        process.wait()
    store = ClipStore.open(data)
    [clip_id] = store.report.partial
    assert store.get(clip_id).state == "partial"
    report = vault.Recovery()
    with open(store.path(clip_id, VIDEO), "rb") as cut:
        plaintext = b"".join(trim(vault.recover(cut, [owner.identity], report), Trimmed()))
    whole_chunks = (on_disk - 200) // SEALED_CHUNK_SIZE  # the header is under 200 bytes
    assert report.plaintext_bytes >= whole_chunks * CHUNK_SIZE
    assert decodable_frames(plaintext) > 10
    store.close()


async def test_a_bell_pressed_while_the_camera_restarts_is_recorded_when_it_is_back(
    data_dir, identities
):
    """The camera is down when the bell is pressed: the press waits for the first frame and
    the clip begins there (no pre-roll exists), instead of being lost."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    opened = []

    def open_cam():
        opened.append(1)
        if len(opened) == 1:
            raise CameraError("no camera at /dev/video0")
        return ScriptedCamera({40: lambda: loop.call_soon_threadsafe(stop.set)})

    def wait(seconds: float) -> None:
        service.press_mock_bell()  # while the service waits to reopen the camera

    service = Service(
        config_for(data_dir),
        demo=True,
        open_cam=open_cam,
        pin_factory=MockFactory(),
        wait=wait,
        notifier=Notifier(None),
    )
    await asyncio.wait_for(service.run(stop), 60)
    store = ClipStore.open(data_dir)
    [clip] = store.list()
    assert clip.trigger == "bell" and clip.state == "complete"
    store.close()


async def test_retention_runs_at_start(data_dir):
    """A clip past max_age_days is gone once the service has started; a kept one stays."""
    import time

    store = ClipStore.open(data_dir)
    ids = []
    for _ in range(2):
        recording = store.new_clip("motion", start=time.time() - 40 * 86400)
        recording.video.write(b"x" * 100)
        ids.append(recording.finish(end=time.time() - 40 * 86400 + 5).id)
    store.set_keep(ids[0], True)
    store.close()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    seen = {}

    def look() -> None:
        seen["clips"] = {c.id for c in service.store.list()}
        seen["status"] = service.status()["retention"]
        loop.call_soon_threadsafe(stop.set)

    service = Service(
        config_for(data_dir),
        demo=True,
        open_cam=lambda: ScriptedCamera({2: look}),
        pin_factory=MockFactory(),
        notifier=Notifier(None),
    )
    await asyncio.wait_for(service.run(stop), 60)
    assert seen["clips"] == {ids[0]}
    assert seen["status"].startswith("clips older than 30 days are deleted")


# Python's audit events for every connection the process makes or name it looks up.
AUDITED_DOORBELL = """
import sys
def hook(event, args):
    if event == "socket.connect":
        print("audit: connect", args[1], file=sys.stderr, flush=True)
    elif event == "socket.getaddrinfo":
        print("audit: getaddrinfo", args[0], file=sys.stderr, flush=True)
sys.addaudithook(hook)
from doorbell.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.cli
def test_the_service_connects_to_nothing(tmp_path):
    """Law 4: `doorbell demo` started, unlocked, recording a bell clip, stopped: the process
    opens no connection and looks up no name but the address it listens on (every socket
    connect and name lookup Python makes raises an audit event; the unit's kernel-level
    rules are tested in test_systemd_unit)."""
    data = tmp_path / "data"
    process, _, _ = demo_recording(data, command=(sys.executable, "-c", AUDITED_DOORBELL))
    log = stop_with_sigterm(process, timeout=10)
    audits = [line.split(" ", 2)[1:] for line in log.splitlines() if line.startswith("audit: ")]
    assert [a for a in audits if a[0] == "connect"] == []
    looked_up = {host for kind, host in audits if kind == "getaddrinfo"}
    assert looked_up <= {"127.0.0.1", "localhost", "::1"}, looked_up
    assert "Traceback" not in log
    store = ClipStore.open(data)
    assert store.list()  # it did record: the check ran on a working doorbell
    store.close()


async def test_recipients_removed_while_running_are_kept_and_said_loudly(data_dir, identities):
    """keys/recipients.txt vanishes mid-run: the bell clip is still recorded, encrypted to
    the key read before (the owner opens it); the status, STATUS= and the journal say that
    nothing new can be read from the file; put back, the fault clears."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    recipients_file = Keyring.in_data_dir(data_dir).recipients_file
    saved = recipients_file.read_bytes()
    seen: dict = {}
    lines: list[str] = []

    def look(key):
        def at_frame():
            seen[key] = service.status()

        return at_frame

    def put_back():
        recipients_file.write_bytes(saved)

    class Recording(Notifier):
        def send(self, **fields):
            if "STATUS" in fields:
                lines.append(fields["STATUS"])
            return True

    frame_clock = [0.0]  # camera seconds: the once-a-second key check follows the frames

    def tick():
        frame_clock[0] += 1 / 15

    script = {i: tick for i in range(62)} | {
        5: recipients_file.unlink,
        10: lambda: service.press_mock_bell(),
        30: look("gone"),
        40: put_back,
        60: look("back"),
        61: lambda: loop.call_soon_threadsafe(stop.set),
    }
    service = Service(
        config_for(data_dir, post_roll=1.0),
        demo=True,
        open_cam=lambda: ScriptedCamera(script),
        pin_factory=MockFactory(),
        notifier=Recording("/run/systemd/notify"),
        monotonic=lambda: frame_clock[0],
    )
    await asyncio.wait_for(service.run(stop), 60)
    fault = (
        f"{recipients_file} is missing: new clips are still encrypted to the 1 key(s) read "
        "before; put the file back"
    )
    assert seen["gone"]["warnings"] == [fault]
    assert seen["gone"]["recipients"] == [saved.decode().split()[-1]]  # still encrypted to it
    assert seen["gone"]["frames"]["dropped"] == 0 and seen["gone"]["frames"]["received"] == 30
    assert any(fault in line for line in lines)
    assert seen["back"]["warnings"] == []
    store = ClipStore.open(data_dir)
    [clip] = store.list()
    with vault.open_file(store.path(clip.id, VIDEO), identities) as reader:
        assert reader.read(8)[4:8] == b"ftyp"
    store.close()


async def test_the_status_says_when_the_clock_is_not_synchronised(data_dir):
    """A Pi before NTP: the status page's clock line and STATUS= say so; once synchronised,
    neither does."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    synced = [False]
    seen: dict = {}

    def look(key):
        def at_frame():
            seen[key] = (service.status()["clock"], service.status_line())
            synced[0] = True

        return at_frame

    script = {2: look("before"), 4: look("after"), 5: lambda: loop.call_soon_threadsafe(stop.set)}
    service = Service(
        config_for(data_dir),
        demo=True,
        open_cam=lambda: ScriptedCamera(script),
        pin_factory=MockFactory(),
        notifier=Notifier(None),
        clock_state=lambda: ClockState(synced[0], "boot", 100.0),
    )
    await asyncio.wait_for(service.run(stop), 60)
    clock, line = seen["before"]
    assert clock == {
        "synchronised": False,
        "text": "clock not synchronised: clip times may be wrong until it is; see README, Time",
    }
    assert line == "camera running; clock not synchronised"
    clock, line = seen["after"]
    assert clock == {"synchronised": True, "text": "clock synchronised"}
    assert line == "camera running"


async def test_a_pi_booted_40_days_behind_keeps_both_clips_and_gets_their_times_right(data_dir):
    """The issue's trial: the wall clock 40 days behind at start, a bell clip, NTP steps the
    clock, a second bell clip. Both clips are kept by retention (it ran before clip 2 and at
    the end), the first is marked uncertain until the clock is set, and then both carry
    their true times."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    mono = [0.0]  # camera seconds, frame by frame
    set_at = [None]  # when NTP set the clock (camera seconds)
    truth = 1_790_000_000.0  # the true Unix time at the first frame

    def wall():
        return truth + mono[0] - (0.0 if set_at[0] is not None else 40 * 86400)

    def state():
        return ClockState(set_at[0] is not None, "this-boot", 500.0 + mono[0])

    def tick():
        mono[0] += 1 / 15

    def ntp():
        set_at[0] = mono[0]

    seen = {}

    def look():
        seen["first"] = [(c.start, c.time_uncertain) for c in service.store.list()]

    def then(action):
        return lambda: (tick(), action())

    script = {i: tick for i in range(200)} | {
        15: then(lambda: service._pressed(0.0)),  # as gpiozero calls it (no debounce between)
        90: then(ntp),
        100: then(look),
        120: then(lambda: service._pressed(0.0)),
        199: then(lambda: loop.call_soon_threadsafe(stop.set)),
    }
    config = config_for(data_dir, post_roll=1.0)
    service = Service(
        config,
        demo=True,
        open_cam=lambda: ScriptedCamera(script),
        pin_factory=MockFactory(),
        notifier=Notifier(None),
        clock=wall,
        monotonic=lambda: mono[0],
        clock_state=state,
    )
    await asyncio.wait_for(service.run(stop), 60)
    [(start, uncertain)] = seen["first"]
    assert uncertain and abs(start - (truth - 40 * 86400)) < 1.0  # stamped 40 days back
    store = ClipStore(data_dir, lambda: [], clock=wall, clock_state=state)
    store.correct_times()
    store.prune()
    second, first = store.list()
    assert not first.time_uncertain and not second.time_uncertain
    assert abs(first.start - truth) < 0.2  # the pre-roll's keyframe at 0 s, corrected
    assert abs(second.start - (truth + 7.0)) < 0.2  # the keyframe 1 s before the press at 8 s
    store.close()


def test_fault_lines_say_each_fault_once():
    """Keys, recorder and retention faults, one line each; a disk-full line replaces
    retention's "short of space" (it says more), never its quota line."""
    from doorbell.status import fault_lines

    short = "the disk is short of space (0 MB free, 2 MB wanted) and no unkept clip is left"
    quota = "kept clips alone use 9 GB, more than the 8 GB quota: unkeep some, or raise quota_gb"
    full = "disk full: kept clips use 6 MB; nothing is recorded until there is room"
    assert fault_lines(None, None, "") == []
    assert fault_lines("keys gone", None, short) == ["keys gone", short]
    assert fault_lines(None, full, f"{quota}; {short}") == [full, quota]
    storage = "storage fault: /data: read-only file system; nothing is recorded until …"
    assert fault_lines(None, storage, short) == [storage, short]


@pytest.mark.cli
def test_sigterm_with_open_event_streams_ends_them_and_exits_at_once(tmp_path):
    """Tabs open on the event stream do not hold the shutdown: ending the sessions wakes
    each stream, which says so and closes (it took 15 s, a heartbeat, before). Exit 0
    well within systemd's stop timeout."""
    import base64
    import http.cookiejar
    import json
    import urllib.request

    data = tmp_path / "data"
    owner = pair_owner(data)
    process = subprocess.Popen(
        [sys.executable, "-m", "doorbell", "demo", "--port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().split()[2]
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

        def post(path: str, body: dict) -> dict:
            request = urllib.request.Request(
                url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            with opener.open(request, timeout=30) as response:
                return json.loads(response.read())

        challenge = post("api/login/challenge", {"owner": owner.id})
        nonce = vault.decrypt_bytes(base64.b64decode(challenge["file"]), [owner.identity])
        post(
            "api/login",
            {"challenge": challenge["challenge"], "answer": base64.b64encode(nonce).decode()},
        )
        streams = [opener.open(url + "api/events", timeout=30) for _ in range(3)]
        for stream in streams:
            assert stream.readline() == b": connected\n"
    except BaseException:
        process.kill()
        process.wait()
        raise
    assert "Traceback" not in stop_with_sigterm(process, timeout=5)
    for stream in streams:
        rest = stream.read()  # the stream ended: its last message says why
        assert b'event: session\ndata: {"ended": "shutdown"}' in rest
