"""The service's opt-in connections out (doorbell/outbound.py): the real service, its
synthetic camera and gpiozero's mock pins, publishing to a real mosquitto and to a local
ntfy-compatible server on loopback ports; with both off, nothing."""

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys

import pytest
from gpiozero.pins.mock import MockFactory

from doorbell.cli.serve import demo_mqtt, demo_notify
from doorbell.errors import UsageError
from doorbell.events import EventBus
from doorbell.outbound import device_id, page_address
from doorbell.service import Service
from tests.mosquitto import Mosquitto
from tests.ntfy_server import NtfyServer
from tests.test_service import ScriptedCamera, config_for


def config_check(config) -> subprocess.CompletedProcess:
    """``doorbell config check CONFIG`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "doorbell", "config", "check", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("hostname", "made"),
    [
        ("frontdoor", "frontdoor"),
        ("Front-Door.local", "front-door-local"),
        ("raspberrypi", "raspberrypi"),
        ("ドア", "doorbell"),  # nothing of it is left
        ("a" * 80, "a" * 64),
    ],
)
def test_the_device_id_is_made_from_the_host_name(hostname, made):
    assert device_id(hostname) == made


def test_demo_mqtt_takes_host_and_port_alone():
    settings = demo_mqtt("127.0.0.1:1883")
    assert (settings.enabled, settings.host, settings.port, settings.username) == (
        True,
        "127.0.0.1",
        1883,
        "",
    )
    assert not demo_mqtt(None).enabled
    for bad in ("broker", "mqtt://broker:1883", "127.0.0.1:0"):
        with pytest.raises(UsageError, match=f"--mqtt {bad}: "):
            demo_mqtt(bad)


async def test_a_press_of_the_bell_reaches_home_assistant(tmp_path, data_dir):
    """``demo --mqtt``'s settings against a broker without accounts: discovery, then a
    press of the (mock) bell button arrives as a ring; the status page says connected."""
    broker = Mosquitto(tmp_path, {}, anonymous=True)
    broker.start()
    import aiomqtt

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    rang = asyncio.Event()
    config = dataclasses.replace(config_for(data_dir), mqtt=demo_mqtt(broker.address))
    service: Service

    pressed = []

    def press_when_ready(frame: int) -> None:
        """One press, at the first frame after the bridge is connected (however long that
        takes on a busy machine)."""
        connected = service.outbound.mqtt is not None and service.outbound.mqtt.connected
        if frame >= 15 and connected and not pressed:
            pressed.append(frame)
            # told before the press: the ring can reach the subscriber before this thread
            # runs again, and the loop must know of the press by then
            loop.call_soon_threadsafe(rang.set)
            service.press_mock_bell()

    camera = ScriptedCamera({}, each=press_when_ready)
    service = Service(config, demo=True, open_cam=lambda: camera, pin_factory=MockFactory())
    try:
        async with aiomqtt.Client(broker.host, broker.port, identifier="ha") as ha:
            await ha.subscribe("homeassistant/#", qos=1)
            await ha.subscribe("doorbell/demo/#", qos=1)
            running = asyncio.create_task(service.run(stop))
            seen: dict[str, str] = {}
            async with asyncio.timeout(30):
                async for message in ha.messages:
                    seen[str(message.topic)] = bytes(message.payload).decode()
                    if rang.is_set() and any(t.endswith("/ring") for t in seen):
                        break
            status = service.status()
            stop.set()
            await asyncio.wait_for(running, 30)
    finally:
        broker.stop()
    ring = next(payload for topic, payload in seen.items() if topic.endswith("/ring"))
    assert json.loads(ring) == {"event_type": "ring"}
    assert any(t.startswith("homeassistant/event/") for t in seen)  # discovery
    assert seen["doorbell/demo/availability"] == "online"
    assert status["mqtt"] == f"connected to {broker.address}"


async def test_with_mqtt_off_there_is_no_bridge(data_dir):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    camera = ScriptedCamera({5: lambda: loop.call_soon_threadsafe(stop.set)})
    service = Service(
        config_for(data_dir), demo=True, open_cam=lambda: camera, pin_factory=MockFactory()
    )
    await asyncio.wait_for(service.run(stop), 30)
    assert service.outbound.mqtt is None
    assert service.status()["mqtt"] is None and service.status()["notify"] is None


def test_a_wildcard_listen_address_becomes_the_host_s_local_name():
    assert page_address("https://0.0.0.0:8443/", "frontdoor") == "https://frontdoor.local:8443/"
    assert page_address("https://[::]:8443/", "frontdoor") == "https://frontdoor.local:8443/"
    assert page_address("http://localhost:8080/", "frontdoor") == "http://localhost:8080/"


async def test_a_press_of_the_bell_reaches_a_phone_through_ntfy(data_dir):
    """``demo --notify URL``: a press of the (mock) bell button is one text notice at a
    local ntfy-compatible server; the status page says it was sent."""
    server = NtfyServer()
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    pressed = asyncio.Event()

    def press() -> None:
        service.press_mock_bell()
        loop.call_soon_threadsafe(pressed.set)

    camera = ScriptedCamera({15: press})
    service = Service(
        config_for(data_dir),
        demo=True,
        open_cam=lambda: camera,
        pin_factory=MockFactory(),
        notify_urls=demo_notify([server.url("doorbell")]),
    )
    running = asyncio.create_task(service.run(stop))
    try:
        [got] = await server.wait_for(1, timeout=30)
        await asyncio.sleep(0)  # the notifier notes the answer
        status = service.status()
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await server.stop()
    assert got.topic == "doorbell" and got.message.startswith("Someone rang")
    assert not got.attachment
    assert status["notify"] is not None and status["mqtt"] is None


def test_config_check_reads_the_files_the_config_names(tmp_path):
    """The MQTT password file and the notification URLs are checked too, each problem
    naming the file (and line), never a token."""
    urls = tmp_path / "notify.urls"
    urls.write_text("ntfy://127.0.0.1:8090/doorbell\nntfyy://user:s3cr3t@host/topic\n")
    urls.chmod(0o600)
    config = tmp_path / "doorbell.toml"
    config.write_text(
        f'[notify]\nenabled = true\nurls_file = "{urls}"\n'
        '[mqtt]\nenabled = true\nhost = "broker.lan"\nusername = "u"\n'
        f'password_file = "{tmp_path / "nowhere"}"\n'
    )
    done = config_check(config)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"doorbell: {config}: [mqtt] MQTT password file {tmp_path / 'nowhere'}: not found",
        f"doorbell: {config}: notify URLs file {urls} line 2: ntfyy: not a service Apprise knows",
    ]
    assert "s3cr3t" not in done.stderr
    (tmp_path / "nowhere").write_text("hunter2\n")
    urls.write_text("ntfy://127.0.0.1:8090/doorbell\n")
    done = config_check(config)
    assert (done.returncode, done.stdout) == (0, f"{config}: ok\n"), done.stderr


async def test_a_broker_with_a_certificate_of_its_own_is_trusted_by_ca_file(tmp_path):
    """``tls = true`` with ``ca_file``: the broker's self-made certificate is checked
    against that file (its host name too); without it, against the system's CAs, which
    refuse it, and the state says why."""
    from doorbell.mqtt import MqttBridge
    from doorbell.mqtt_settings import MqttSettings
    from doorbell.web import tls

    cert = tls.ensure_certificate(tmp_path / "tls")  # names localhost and 127.0.0.1
    broker = Mosquitto(tmp_path, {}, anonymous=True)
    with broker.config.open("a") as config:  # for the one listener above
        config.write(f"certfile {cert}\nkeyfile {cert.parent / tls.KEY}\n")
    broker.start()
    loop = asyncio.get_running_loop()
    try:
        for ca_file, state in ((str(cert), "connected to"), ("", "certificate is not trusted")):
            settings = MqttSettings(
                enabled=True,
                host=broker.host,
                port=broker.port,
                tls=True,
                ca_file=ca_file,
                device_id="tls",
            )
            bridge = MqttBridge(settings, version="test")
            bus = EventBus(loop)
            task = asyncio.create_task(bridge.run(bus.subscribe()))
            try:
                async with asyncio.timeout(10):
                    while state not in bridge.describe():
                        await asyncio.sleep(0.05)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        broker.stop()


def test_ca_file_needs_tls_and_an_absolute_path():
    from doorbell.mqtt_settings import MqttSettings, settings_problem

    on = {"enabled": True, "host": "broker.lan", "device_id": "d"}
    assert settings_problem(MqttSettings(**on, ca_file="/etc/ca.pem")) == (
        "ca_file: a certificate to trust needs tls = true"
    )
    assert settings_problem(MqttSettings(**on, tls=True, ca_file="ca.pem")) == (
        "ca_file: must be an absolute path, not 'ca.pem'"
    )
    assert settings_problem(MqttSettings(**on, tls=True, ca_file="/etc/ca.pem")) is None


def test_config_check_reads_the_broker_s_ca_file(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    config = tmp_path / "doorbell.toml"
    config.write_text(
        f'[mqtt]\nenabled = true\nhost = "broker.lan"\ntls = true\nca_file = "{ca}"\n'
    )
    done = config_check(config)
    assert done.returncode == 1
    assert done.stderr.startswith(f"doorbell: {config}: [mqtt] ca_file {ca}: cannot use it ("), (
        done.stderr
    )
