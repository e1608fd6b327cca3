"""Home Assistant over MQTT, against a real mosquitto (Debian's, on a free loopback port,
with a password file): discovery, rings, motion, the last clip, availability and the last
will, bad credentials, a broker killed and restarted, and a bus that never waits."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from doorbell import mqtt_topics as mt
from doorbell.events import (
    BellPressed,
    CameraState,
    ClipFinished,
    EventBus,
    MotionChanged,
    PirChanged,
)
from doorbell.mqtt import (
    QUEUE_SIZE,
    MqttBridge,
    MqttSettings,
    MqttSettingsError,
    describe_error,
    motion_seen,
    read_password,
    settings_problem,
)
from doorbell.store import Clip
from tests.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "porch-light-7731"
WATCHER_PASSWORD = "watcher-pw-1"
DEVICE = "frontdoor"
TOPICS = mt.Topics("doorbell", "homeassistant", DEVICE)
CLIP_ID = "0123456789abcdef"


# -- a broker, a password file, a watching client ------------------------------------------


@pytest.fixture
def broker(tmp_path):
    server = Mosquitto(tmp_path, users={"doorbell": PASSWORD, "watcher": WATCHER_PASSWORD})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def password_file(tmp_path) -> Path:
    path = tmp_path / "mqtt-password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


def settings_for(broker: Mosquitto, password_file: Path, **changes) -> MqttSettings:
    fields = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "username": "doorbell",
        "password_file": str(password_file),
        "device_id": DEVICE,
    }
    return MqttSettings(**(fields | changes))


@dataclass
class Seen:
    topic: str
    payload: str
    retain: bool
    at: float  # time.perf_counter() when it arrived


class Watcher:
    """A Home Assistant stand-in: an aiomqtt client subscribed to some topics."""

    def __init__(self, client) -> None:
        self.client = client
        self.buffer: list[Seen] = []

    async def take(self, topic: str, timeout: float = 5.0) -> Seen:
        """The next message on ``topic`` (others are kept for later)."""
        async with asyncio.timeout(timeout):
            while True:
                for i, seen in enumerate(self.buffer):
                    if seen.topic == topic:
                        return self.buffer.pop(i)
                message = await self.client.messages.__anext__()
                self.buffer.append(
                    Seen(
                        str(message.topic),
                        bytes(message.payload).decode(),
                        message.retain,
                        time.perf_counter(),
                    )
                )

    async def quiet(self, seconds: float = 0.3) -> list[Seen]:
        """Everything that arrives until ``seconds`` pass without a message."""
        with suppress(TimeoutError):
            while True:
                async with asyncio.timeout(seconds):
                    message = await self.client.messages.__anext__()
                    self.buffer.append(
                        Seen(str(message.topic), bytes(message.payload).decode(), message.retain, 0)
                    )
        found, self.buffer = self.buffer, []
        return found


@asynccontextmanager
async def watching(broker: Mosquitto, *topics: str):
    import aiomqtt

    async with aiomqtt.Client(
        broker.host,
        broker.port,
        username="watcher",
        password=WATCHER_PASSWORD,
        identifier=f"watcher-{uuid.uuid4().hex[:8]}",
    ) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        yield Watcher(client)


async def until(condition, timeout: float = 5.0) -> None:
    """Wait for real I/O (a broker, a socket) to make ``condition()`` true."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@asynccontextmanager
async def running(bridge: MqttBridge, events):
    task = asyncio.create_task(bridge.run(events))
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


class Gate:
    """An injected ``sleep``: records each delay and returns only when the test opens it
    (``open()``), or at once when made ``Gate(open=True)``; after ``hold_after`` delays it
    holds for good (the bridge stays in its waiting state for the test to read)."""

    def __init__(self, open: bool = False, hold_after: int | None = None) -> None:
        self.delays: list[float] = []
        self._open = asyncio.Event()
        self._hold_after = hold_after
        if open:
            self._open.set()

    def open(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._open.clear()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self._hold_after is not None and len(self.delays) >= self._hold_after:
            await asyncio.Event().wait()
        await self._open.wait()
        await asyncio.sleep(0.01)  # real I/O (a broker starting) gets its turn


async def retained(broker: Mosquitto, topic: str) -> Seen:
    """What a client subscribing now (Home Assistant after a restart) gets on ``topic``."""
    async with watching(broker, topic) as later:
        seen = await later.take(topic)
    assert seen.retain, seen
    return seen


def new_bus():
    return EventBus(asyncio.get_running_loop())


# -- the pure parts ------------------------------------------------------------------------


def test_settings_problems_name_the_key():
    good = MqttSettings(enabled=True, host="broker.lan", device_id="frontdoor")
    assert settings_problem(good) is None
    assert settings_problem(MqttSettings()) is None  # off, nothing set
    cases = {
        "host: is empty (MQTT is enabled)": MqttSettings(enabled=True),
        "host: is a URL": MqttSettings(enabled=True, host="mqtt://broker.lan"),
        "host: has a ':'": MqttSettings(enabled=True, host="broker.lan:1883"),
        "port: must be a whole number": MqttSettings(host="b", port=0),
        "password_file: must be an absolute path": MqttSettings(
            host="b", username="u", password_file="pw.txt"
        ),
        "password_file: a password needs a username": MqttSettings(
            host="b", password_file="/etc/doorbell/mqtt-password"
        ),
        "topic_prefix: may not contain +": MqttSettings(host="b", topic_prefix="door/#"),
        "discovery_prefix: has an empty level": MqttSettings(host="b", discovery_prefix="ha/"),
        "device_id: must be 1 to 64": MqttSettings(host="b", device_id="Front Door"),
    }
    for said, settings in cases.items():
        problem = settings_problem(settings)
        assert problem is not None and problem.startswith(said), (said, problem)
    assert settings_problem(MqttSettings(enabled=True, host="fd00::5")) is None


def test_a_bridge_refuses_settings_it_cannot_use():
    with pytest.raises(MqttSettingsError, match=r"\[mqtt\] device_id: is empty"):
        MqttBridge(MqttSettings(enabled=True, host="broker.lan"), version="1")
    with pytest.raises(MqttSettingsError, match=r"\[mqtt\] host"):
        MqttBridge(MqttSettings(enabled=True, device_id="x"), version="1")


def test_the_password_file_is_read_and_its_errors_name_the_file_never_the_content(tmp_path):
    path = tmp_path / "pw"
    path.write_text("s3cret\n")
    assert read_password(str(path)) == "s3cret"
    cases = {
        "not found": None,
        "empty": b"\n",
        "more than one line": b"s3cret\nother\n",
        "not UTF-8 text": b"s3cret\xff\n",
        "longer than 4096 bytes": b"s" * 5000,
    }
    for said, content in cases.items():
        path.unlink(missing_ok=True)
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(MqttSettingsError) as raised:
            read_password(str(path))
        assert str(raised.value) == f"MQTT password file {path}: {said}"
        assert "s3cret" not in str(raised.value)


def test_connection_errors_read_as_words_without_the_password():
    import aiomqtt
    from aiomqtt.exceptions import MqttCodeError, MqttConnectError
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    def refusal(code: int) -> Exception:
        return MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=code))

    hung_up = aiomqtt.MqttError("Disconnected during message iteration")
    hung_up.__cause__ = MqttCodeError(
        ReasonCode(PacketTypes.DISCONNECT, identifier=142), "Unexpected disconnection"
    )
    cases = {
        "connection refused": aiomqtt.MqttError("[Errno 111] Connection refused"),
        "host not found (DNS)": aiomqtt.MqttError("[Errno -2] Name or service not known"),
        "timed out": aiomqtt.MqttError("Operation timed out"),
        "refused by the broker: bad user name or password": refusal(134),
        "refused by the broker: not authorised (check the user name and password)": refusal(135),
        "connection lost": aiomqtt.MqttError("Disconnected during message iteration"),
        "connection lost: session taken over": hung_up,
        "TLS: the broker's certificate is not trusted": aiomqtt.MqttError(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"
        ),
        "something new": aiomqtt.MqttError("[Errno 99] something new"),
    }
    for said, err in cases.items():
        assert describe_error(err) == said
    leaky = aiomqtt.MqttError(f"login as doorbell:{PASSWORD} failed")
    assert describe_error(leaky, PASSWORD) == "login as doorbell:*** failed"


def test_backoff_doubles_from_one_second_to_a_minute():
    assert [mt.backoff_delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert mt.backoff_delay(10_000) == 60


def test_a_clip_time_is_iso_8601_with_its_offset():
    berlin = ZoneInfo("Europe/Berlin")
    assert mt.clip_time(1_790_000_000.4, berlin) == "2026-09-21T16:13:20+02:00"
    assert mt.clip_time(1_800_000_000, berlin) == "2027-01-15T09:00:00+01:00"
    assert datetime.fromisoformat(mt.clip_time(1_800_000_000)).timestamp() == 1_800_000_000


def test_discovery_names_three_entities_of_one_device():
    configs = dict(mt.discovery(TOPICS, version="1.2.3", name="Front door"))
    event = json.loads(configs["homeassistant/event/frontdoor/ring/config"])
    motion = json.loads(configs["homeassistant/binary_sensor/frontdoor/motion/config"])
    clip = json.loads(configs["homeassistant/sensor/frontdoor/last_clip/config"])
    assert (event["device_class"], event["event_types"]) == ("doorbell", ["ring"])
    assert event["state_topic"] == "doorbell/frontdoor/ring"
    assert (motion["device_class"], motion["payload_on"], motion["payload_off"]) == (
        "motion",
        "ON",
        "OFF",
    )
    assert clip["device_class"] == "timestamp"
    assert len({c["unique_id"] for c in (event, motion, clip)}) == 3
    for entity in (event, motion, clip):
        assert entity["availability_topic"] == "doorbell/frontdoor/availability"
        assert entity["device"] == {
            "identifiers": ["doorbell_frontdoor"],
            "name": "Front door",
            "model": "doorbell",
            "manufacturer": "doorbell project",
            "sw_version": "1.2.3",
        }


def test_importing_the_bridge_loads_no_mqtt_library():
    code = "import sys, doorbell.mqtt\nprint(sorted(m for m in sys.modules if 'mqtt' in m and not m.startswith('doorbell')))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.stdout.strip() == "[]"


# -- against a real broker -----------------------------------------------------------------


async def test_discovery_and_the_states_are_retained_on_start(broker, password_file):
    bus = new_bus()
    bridge = MqttBridge(
        settings_for(broker, password_file), version="1.2.3", last_clip_at=1_800_000_000
    )
    async with running(bridge, bus.subscribe(maxsize=QUEUE_SIZE)):
        await until(lambda: bridge.connected)
        assert bridge.describe() == f"connected to {broker.address}"
        await until(lambda: bridge.published >= 6)
        # a watcher that comes later (Home Assistant restarting) finds it all retained
        async with watching(broker, "homeassistant/#", "doorbell/#") as ha:
            configs = {}
            for component, object_id in (
                ("event", "ring"),
                ("binary_sensor", "motion"),
                ("sensor", "last_clip"),
            ):
                seen = await ha.take(TOPICS.config(component, object_id))
                assert seen.retain
                configs[component] = json.loads(seen.payload)
            for topic, payload in (
                (TOPICS.availability, "online"),
                (TOPICS.motion, "OFF"),
                (TOPICS.last_clip, mt.clip_time(1_800_000_000)),
            ):
                seen = await ha.take(topic)
                assert (seen.payload, seen.retain) == (payload, True)
            assert [s.topic for s in await ha.quiet()] == []  # nothing else, no ring
    assert configs["event"]["event_types"] == ["ring"]
    assert {c["device"]["sw_version"] for c in configs.values()} == {"1.2.3"}


async def test_a_ring_on_the_bus_arrives_on_the_ring_topic(broker, password_file):
    bus = new_bus()
    bridge = MqttBridge(settings_for(broker, password_file), version="1")
    async with watching(broker, TOPICS.ring) as ha, running(bridge, bus.subscribe()):
        await until(lambda: bridge.connected)
        await until(lambda: bridge.published >= 5)
        bus.publish(BellPressed(time.time() - 3 * 60))  # waited too long: not a ring now
        bus.publish(CameraState(time.time(), "running"))  # not for MQTT
        pressed = time.perf_counter()
        bus.publish(BellPressed(time.time()))
        seen = await ha.take(TOPICS.ring, timeout=5)
        print(f"bell on the bus -> ring at the watcher: {(seen.at - pressed) * 1000:.1f} ms")
        assert json.loads(seen.payload) == {"event_type": "ring"}
        assert not seen.retain
        assert await ha.quiet() == []  # the old ring never came
        assert (bridge.rings, bridge.late) == (1, 1)
        assert bridge.describe().endswith("; 1 event not sent (broker away or slow)")


async def test_motion_on_and_off_and_the_last_clip_time(broker, password_file):
    bus = new_bus()
    bridge = MqttBridge(settings_for(broker, password_file), version="1")
    clip = Clip(CLIP_ID, 1_790_000_000.0, 1_790_000_031.0, "bell", 123_456, False, "complete")
    async with watching(broker, "doorbell/#") as ha, running(bridge, bus.subscribe()):
        await until(lambda: bridge.connected)
        assert (await ha.take(TOPICS.motion)).payload == "OFF"
        bus.publish(MotionChanged(time.time(), True))
        assert (await ha.take(TOPICS.motion)).payload == "ON"
        assert (await retained(broker, TOPICS.motion)).payload == "ON"
        bus.publish(ClipFinished(clip))
        assert (await ha.take(TOPICS.last_clip)).payload == mt.clip_time(clip.start)
        seen = await retained(broker, TOPICS.last_clip)
        assert datetime.fromisoformat(seen.payload).timestamp() == clip.start
        bus.publish(MotionChanged(time.time(), False))
        assert (await ha.take(TOPICS.motion)).payload == "OFF"
        assert (await retained(broker, TOPICS.motion)).payload == "OFF"
        everything = await ha.quiet()
    for seen in everything:
        assert CLIP_ID not in seen.payload and "http" not in seen.payload


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ([], False),
        ([("pir", True)], True),
        ([("camera", True), ("pir", True), ("camera", False)], True),
        ([("camera", True), ("pir", True), ("camera", False), ("pir", False)], False),
        ([("pir", False)], False),
    ],
)
def test_motion_is_on_while_the_camera_or_the_pir_says_so(changes, said):
    moving: dict[str, bool] = {}
    for source, active in changes:
        moving[source] = active
    assert motion_seen(moving) is said


async def test_a_clip_of_an_unset_clock_tells_no_time(broker, password_file):
    """A clip begun before the clock was set (a Pi without a battery clock, weeks out at
    boot) is not sent as the last clip's time; the next one with a known time is."""
    bus = new_bus()
    bridge = MqttBridge(settings_for(broker, password_file), version="1")
    unsure = Clip(CLIP_ID, 1_000_000.0, 1_000_031.0, "bell", 1, False, "complete", True)
    sure = Clip(CLIP_ID, 1_790_000_000.0, 1_790_000_031.0, "bell", 1, False, "complete")
    async with watching(broker, "doorbell/#") as ha, running(bridge, bus.subscribe()):
        await until(lambda: bridge.connected)
        bus.publish(ClipFinished(unsure))
        bus.publish(ClipFinished(sure))
        assert (await ha.take(TOPICS.last_clip)).payload == mt.clip_time(sure.start)
        everything = await ha.quiet()
    assert [m for m in everything if m.topic == TOPICS.last_clip] == []


async def test_a_pir_sensor_moves_the_motion_sensor_with_the_camera(broker, password_file):
    bus = new_bus()
    bridge = MqttBridge(settings_for(broker, password_file), version="1")
    async with watching(broker, "doorbell/#") as ha, running(bridge, bus.subscribe()):
        await until(lambda: bridge.connected)
        assert (await ha.take(TOPICS.motion)).payload == "OFF"
        bus.publish(PirChanged(time.time(), True))
        assert (await ha.take(TOPICS.motion)).payload == "ON"
        bus.publish(MotionChanged(time.time(), True))
        bus.publish(PirChanged(time.time(), False))  # the camera still sees someone
        bus.publish(MotionChanged(time.time(), False))
        assert (await ha.take(TOPICS.motion)).payload == "OFF"
        everything = await ha.quiet()
    assert [m.payload for m in everything if m.topic == TOPICS.motion] == []


async def test_a_clean_stop_says_offline(broker, password_file):
    bridge = MqttBridge(settings_for(broker, password_file), version="1")
    async with watching(broker, TOPICS.availability) as ha:
        async with running(bridge, new_bus().subscribe()):
            assert (await ha.take(TOPICS.availability)).payload == "online"
        assert bridge.state == "stopped"
        assert (await ha.take(TOPICS.availability)).payload == "offline"
    assert (await retained(broker, TOPICS.availability)).payload == "offline"


async def test_a_stop_ends_even_when_a_publish_swallowed_its_cancellation(broker, password_file):
    """Python 3.11's asyncio.wait_for (under aiomqtt's publish) can swallow a cancellation
    that lands as the broker's acknowledgement arrives: the publish returns as if nothing
    happened. The bridge must stop all the same, not wait for events that never come
    (found trying ``demo --mqtt``: Ctrl-C hung 2 stops in 16)."""
    bus = new_bus()
    bridge = MqttBridge(settings_for(broker, password_file), version="1")
    publishing, never = asyncio.Event(), asyncio.Event()
    publish = bridge._publish

    async def swallowing(client, topic, payload, *, retain):
        if topic != TOPICS.ring:
            return await publish(client, topic, payload, retain=retain)
        publishing.set()
        with suppress(asyncio.CancelledError):  # what wait_for did with the cancellation
            await never.wait()

    bridge._publish = swallowing  # type: ignore[method-assign]
    task = asyncio.create_task(bridge.run(bus.subscribe()))
    await until(lambda: bridge.connected)
    bus.publish(BellPressed(time.time()))
    await asyncio.wait_for(publishing.wait(), 5)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done == {task}, "the bridge did not stop"
    assert task.cancelled() and bridge.state == "stopped"


CHILD = """
import asyncio, sys
from doorbell.events import EventBus
from doorbell.mqtt import MqttBridge, MqttSettings

async def main():
    bus = EventBus(asyncio.get_running_loop())
    host, port, password_file = sys.argv[1:]
    settings = MqttSettings(enabled=True, host=host, port=int(port), username="doorbell",
                            password_file=password_file, device_id="frontdoor")
    await MqttBridge(settings, version="1").run(bus.subscribe())

asyncio.run(main())
"""


async def test_the_last_will_says_offline_when_the_doorbell_dies(broker, password_file):
    """A doorbell killed without a goodbye (power cut, SIGKILL): the broker says
    ``offline`` for it, so Home Assistant shows it unavailable."""
    async with watching(broker, TOPICS.availability) as ha:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, broker.host, str(broker.port), str(password_file)],
            cwd=ROOT,
        )
        try:
            assert (await ha.take(TOPICS.availability, timeout=15)).payload == "online"
            os.kill(child.pid, signal.SIGKILL)
            child.wait(5)
            killed = time.perf_counter()
            seen = await ha.take(TOPICS.availability)
            print(f"killed -> will at the watcher: {(seen.at - killed) * 1000:.1f} ms")
            assert seen.payload == "offline"
        finally:
            child.kill()
            child.wait(5)


async def test_a_wrong_password_is_a_clear_state_and_never_logged(broker, tmp_path, caplog):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("wrong-horse-battery\n")
    gate = Gate(open=True, hold_after=3)
    bridge = MqttBridge(settings_for(broker, wrong), version="1", sleep=gate)
    caplog.set_level("DEBUG")
    async with running(bridge, new_bus().subscribe()):
        await until(lambda: len(gate.delays) >= 3)
        said = bridge.describe()
    assert "refused by the broker" in said and (
        "bad user name or password" in said or "not authorised" in said
    ), said
    assert gate.delays[:3] == [1, 2, 4]
    lines = [r for r in caplog.records if r.name == "doorbell.mqtt"]
    assert len(lines) == 1, [r.getMessage() for r in lines]  # one line a state change
    assert broker.address in lines[0].getMessage()
    assert "wrong-horse-battery" not in caplog.text and "Traceback" not in caplog.text
    assert not any(r.exc_info for r in caplog.records)


async def test_a_missing_password_file_is_a_state_not_a_crash(broker, tmp_path):
    missing = tmp_path / "nowhere" / "password"
    gate = Gate()
    bridge = MqttBridge(settings_for(broker, missing), version="1", sleep=gate)
    async with running(bridge, new_bus().subscribe()):
        await until(lambda: gate.delays)
        said = bridge.describe()
    assert said == f"reconnecting in 1 s: MQTT password file {missing}: not found"


async def test_backoff_while_nobody_listens(tmp_path, password_file):
    from tests.mosquitto import free_port

    settings = MqttSettings(
        enabled=True,
        host="127.0.0.1",
        port=free_port(),
        username="doorbell",
        password_file=str(password_file),
        device_id=DEVICE,
    )
    gate = Gate(open=True, hold_after=8)
    bridge = MqttBridge(settings, version="1", sleep=gate)
    async with running(bridge, new_bus().subscribe()):
        await until(lambda: len(gate.delays) >= 8)
        said = bridge.describe()
    assert gate.delays[:8] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert said.startswith("reconnecting in ") and said.endswith(" s: connection refused")


async def test_the_broker_killed_and_restarted(broker, password_file, caplog):
    """The broker dies (and with it every retained message: no persistence); the bridge
    says so, comes back when the broker does, and says everything again."""
    caplog.set_level("DEBUG")
    bus = new_bus()
    gate = Gate()
    bridge = MqttBridge(settings_for(broker, password_file), version="1", sleep=gate)
    async with running(bridge, bus.subscribe()):
        await until(lambda: bridge.connected)
        bus.publish(MotionChanged(time.time(), True))
        await until(lambda: bridge.published >= 6)
        broker.kill()
        await until(lambda: gate.delays)
        assert bridge.describe().startswith("reconnecting in 1 s: connection lost")
        broker.start()
        gate.open()
        await until(lambda: bridge.connected)
        async with watching(broker, "homeassistant/#", "doorbell/#") as ha:
            for component, object_id in (
                ("event", "ring"),
                ("binary_sensor", "motion"),
                ("sensor", "last_clip"),
            ):
                assert (await ha.take(TOPICS.config(component, object_id))).retain
            assert (await ha.take(TOPICS.motion)).payload == "ON"  # as it was
            assert (await ha.take(TOPICS.availability)).payload == "online"
            bus.publish(BellPressed(time.time()))
            assert json.loads((await ha.take(TOPICS.ring)).payload) == {"event_type": "ring"}
    said = [r.getMessage() for r in caplog.records if r.name == "doorbell.mqtt"]
    assert said == [
        f"mqtt: connected to {broker.address}",
        f"mqtt: {broker.address}: connection lost (trying again, 1 s doubling to 60 s)",
        f"mqtt: connected to {broker.address}",
    ]
    assert not any(r.exc_info for r in caplog.records)
    assert "Traceback" not in caplog.text and "never retrieved" not in caplog.text


async def test_the_bus_never_waits_for_an_absent_broker(broker, password_file):
    bus = new_bus()
    gate = Gate()
    subscription = bus.subscribe(maxsize=QUEUE_SIZE)
    broker.kill()
    bridge = MqttBridge(settings_for(broker, password_file), version="1", sleep=gate)
    async with running(bridge, subscription):
        await until(lambda: gate.delays)  # refused; waiting to try again
        started = time.perf_counter()
        for _ in range(1000):
            bus.publish(BellPressed(time.time()))
        took = time.perf_counter() - started
        print(f"1000 events published with the broker down: {took * 1000:.2f} ms")
        assert took < 0.5  # a few ms; generous for a busy machine
        assert subscription.queue.qsize() == QUEUE_SIZE
        assert subscription.dropped == 1000 - QUEUE_SIZE
        assert f"{1000 - QUEUE_SIZE} events not sent" in bridge.describe()
        broker.start()
        async with watching(broker, TOPICS.ring) as ha:
            gate.open()
            await until(lambda: bridge.connected)
            rings = [s for s in await ha.quiet(0.5) if s.topic == TOPICS.ring]
        assert len(rings) == QUEUE_SIZE  # the newest ones, none lost since


async def test_tls_to_a_plain_port_says_what_to_check(broker, password_file):
    gate = Gate()
    bridge = MqttBridge(settings_for(broker, password_file, tls=True), version="1", sleep=gate)
    async with running(bridge, new_bus().subscribe()):
        await until(lambda: gate.delays)
        said = bridge.describe()
    assert said == (
        "reconnecting in 1 s: the broker hung up while connecting "
        "(is tls = true right for this port?)"
    )


async def test_a_broker_without_accounts_as_the_demo_uses_it(tmp_path):
    """``doorbell demo --mqtt HOST:PORT``: no user name, no password."""
    broker = Mosquitto(tmp_path, users={}, anonymous=True)
    broker.start()
    try:
        settings = MqttSettings(enabled=True, host=broker.host, port=broker.port, device_id="demo")
        bridge = MqttBridge(settings, version="1")
        bus = new_bus()
        async with running(bridge, bus.subscribe()):
            await until(lambda: bridge.connected)
            import aiomqtt

            async with aiomqtt.Client(broker.host, broker.port) as ha:
                await ha.subscribe("doorbell/demo/ring", qos=1)
                bus.publish(BellPressed(time.time()))
                async with asyncio.timeout(5):
                    message = await ha.messages.__anext__()
        assert json.loads(bytes(message.payload)) == {"event_type": "ring"}
    finally:
        broker.stop()
