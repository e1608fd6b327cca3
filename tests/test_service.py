"""The composition root: the real service with a synthetic camera and gpiozero's mock pins."""

import asyncio
import dataclasses
import io
import signal
import subprocess
import sys

import av
import pytest
from gpiozero.pins.mock import MockFactory

from doorbell import trigger, vault
from doorbell.camera.synthetic import SyntheticCamera
from doorbell.config import Config, StorageSettings, WebSettings
from doorbell.pipeline import PipelineSettings
from doorbell.service import Service
from doorbell.store import VIDEO, ClipStore
from tests.conftest import PASSPHRASE, find_plaintext


def config_for(data_dir, **policy) -> Config:
    rules = trigger.Policy(**{"pre_roll": 1.0, "post_roll": 30.0, "motion_starts": False} | policy)
    return dataclasses.replace(
        Config(),
        pipeline=PipelineSettings(policy=rules),
        storage=StorageSettings(data_dir=str(data_dir)),
        web=WebSettings(listen="127.0.0.1:0", tls="off"),
    )


class ScriptedCamera(SyntheticCamera):
    """The synthetic camera, as fast as it renders, doing ``script[n]()`` before frame n."""

    def __init__(self, script: dict) -> None:
        super().__init__(width=320, height=180, fps=15.0, visitors=())
        self.script = script

    def frames(self):
        for frame in super().frames():
            action = self.script.get(frame.index)
            if action is not None:
                action()
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


@pytest.mark.cli
def test_sigterm_stops_the_demo_cleanly(tmp_path, passphrase_file):
    """`doorbell demo` as a process: it prints the URL, serves, and SIGTERM ends it with 0."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "doorbell",
            "demo",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--passphrase-file",
            str(passphrase_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("doorbell: open http://localhost:"), line
        lines = [process.stdout.readline() for _ in range(2)]
        assert f"the one in {passphrase_file}" in lines[0]
        assert PASSPHRASE not in "".join([line, *lines])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.wait()
    assert "Traceback" not in process.stderr.read()
