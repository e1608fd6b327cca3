"""The Pi camera backend, driven through picamera2's own encoder, output and request classes.

Off a Pi only libcamera and pykms (C bindings) are stubbed, in
``tests/fake_picamera2.py``; the frames pass through picamera2's real
``pre_callback`` order, ``MappedArray``, ``CompletedRequest`` and
``LibavH264Encoder`` (libx264, what a Pi 5 uses), into our ``PacketOutput``.
"""

import io
import subprocess
import sys

import av
import numpy as np
import pytest

from doorbell import trigger, vault
from doorbell.camera import CameraError, lores_size, open_camera
from doorbell.pipeline import Pipeline, PipelineSettings
from doorbell.store import VIDEO, ClipStore
from tests.fake_picamera2 import FakePicamera2

from doorbell.camera import picam  # isort: skip  (needs the stubs imported above)

WIDTH, HEIGHT, FPS = 640, 360, 15.0
TOP_LEFT = [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]]


def scene(at: float) -> np.ndarray:
    """A moving, noisy picture, brightest in the top-left quarter that the mask hides."""
    rng = np.random.default_rng(int(at * 1000))
    image = rng.integers(60, 120, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[: HEIGHT // 2, : WIDTH // 2] = rng.integers(200, 256, (HEIGHT // 2, WIDTH // 2, 3))
    x = int(40 + 100 * at) % (WIDTH - 80)
    image[200:300, x : x + 60] = (20, 200, 240)
    return image


def pi_camera(
    masks=TOP_LEFT, align: int = 128, fail_after: int | None = None, **options
) -> tuple[picam.PiCamera, list]:
    made: list[FakePicamera2] = []

    def factory(number: int) -> FakePicamera2:
        fake = FakePicamera2(number, source=scene, fps=FPS, align=align, fail_after=fail_after)
        made.append(fake)
        return fake

    camera = picam.PiCamera(
        size=(WIDTH, HEIGHT), fps=FPS, masks=masks, encoder="libav", picamera2=factory, **options
    )
    return camera, made


def decode(packets) -> list[np.ndarray]:
    codec = av.CodecContext.create("h264", "r")
    frames = []
    for packet in packets:
        for frame in codec.decode(av.Packet(packet.data)):
            frames.append(frame.to_ndarray(format="gray"))
    for frame in codec.decode(None):
        frames.append(frame.to_ndarray(format="gray"))
    return frames


@pytest.mark.parametrize(
    ("requested", "platform", "chosen"),
    [
        ("auto", "VC4", "hardware"),  # Pi 4, Pi 3, Zero 2 W
        ("auto", "PISP", "libav"),  # Pi 5: no H.264 block
        ("libav", "VC4", "libav"),
        ("hardware", "VC4", "hardware"),
    ],
)
def test_the_encoder_follows_the_pi(requested, platform, chosen):
    assert picam.choose_encoder(requested, platform) == chosen


def test_a_pi_without_an_encoder_block_says_so():
    with pytest.raises(CameraError, match=r"no hardware H\.264 encoder"):
        picam.choose_encoder("hardware", "PISP")
    with pytest.raises(CameraError, match="unknown encoder 'x265'"):
        picam.choose_encoder("x265", "VC4")


def test_streams_and_frames():
    camera, (fake,) = pi_camera()
    try:
        assert fake.camera_config["main"]["format"] == fake.camera_config["lores"]["format"]
        assert camera.lores == lores_size(WIDTH, HEIGHT) == (320, 180)
        assert camera._lores_stride == 384  # padded rows, as on a Pi
        frames = []
        for frame in camera.frames():
            frames.append(frame)
            if len(frames) == 30:
                break
        assert [f.index for f in frames] == list(range(30))
        # times come from the sensor's clock, counted from the first frame
        assert [f.at for f in frames] == pytest.approx([n / FPS for n in range(30)])
        assert frames[0].grey.shape == (180, 320) and frames[0].i420.shape == (540, 640)
        assert frames[0].image.shape == (HEIGHT, WIDTH, 3) and frames[0].masked
        packets = [p for f in frames for p in f.packets] + camera.stop_encoder()
        assert len(packets) == 30 and packets[0].keyframe
        assert [p.at for p in packets] == pytest.approx([f.at for f in frames], abs=1e-5)
        assert [i for i, p in enumerate(packets) if p.keyframe] == [0, 15]  # one a second
    finally:
        camera.close()
    assert fake.closed and not fake.encoders


def test_masked_pixels_never_reach_the_encoder_or_the_motion_stream():
    camera, _ = pi_camera()
    try:
        frames = [f for f, _ in zip(camera.frames(), range(20), strict=False)]
        packets = [p for f in frames for p in f.packets] + camera.stop_encoder()
    finally:
        camera.close()
    for frame in frames:
        luma = frame.i420[:HEIGHT]
        chroma = frame.i420[HEIGHT:].reshape(-1)
        assert (luma[: HEIGHT // 2, : WIDTH // 2] == 0).all()
        assert luma[HEIGHT // 2 + 1 :].min() > 0  # the rest is untouched (the edge is masked)
        u = chroma[: (WIDTH // 2) * (HEIGHT // 2)].reshape(HEIGHT // 2, WIDTH // 2)
        assert (u[: HEIGHT // 4, : WIDTH // 4] == 128).all()
        assert (frame.grey[:90, :160] == 0).all() and frame.grey[91:].min() > 0
        assert frame.image[: HEIGHT // 2 - 2, : WIDTH // 2 - 2].max() <= 2
    decoded = decode(packets)
    assert len(decoded) == 20
    for grey in decoded:
        hidden = grey[: HEIGHT // 2 - 8, : WIDTH // 2 - 8]  # less a codec margin
        assert hidden.max() <= 20 and hidden.std() < 1.0
        assert grey[HEIGHT // 2 + 8 :].mean() > 50


def test_without_masks_the_picture_is_whole():
    camera, _ = pi_camera(masks=())
    try:
        frame = next(iter(camera.frames()))
    finally:
        camera.close()
    assert frame.i420[: HEIGHT // 2, : WIDTH // 2].min() > 150


def test_a_bell_clip_from_the_pi_camera(data_dir, identities):
    camera, _ = pi_camera()
    store = ClipStore.open(data_dir)
    policy = trigger.Policy(pre_roll=2.0, post_roll=1.0, motion_starts=False)
    settings = PipelineSettings(policy=policy, masks=TOP_LEFT)
    pipeline = Pipeline(
        store,
        settings,
        camera.width,
        camera.height,
        camera.fps,
        wall_time=lambda t: 1_700_000_000 + t,
        encoded=camera.stream_info,
    )
    assert pipeline.encoder is None  # the Pi encodes; no libx264 in the pipeline
    try:
        for frame in camera.frames():
            if frame.index == 60:
                pipeline.press_bell(frame.at)
            pipeline.process(frame)
            if frame.at >= 6.0:
                break
        [recorded] = pipeline.finish(camera.stop_encoder())
    finally:
        camera.close()
        store.close()
    assert recorded.clip.trigger == "bell" and recorded.trigger_at == 4.0
    assert recorded.start_at == pytest.approx(2.0, abs=1e-5)  # the keyframe at 2 s
    with vault.open_file(ClipStore.open(data_dir).path(recorded.clip.id, VIDEO), identities) as f:
        mp4 = f.read()
    with av.open(io.BytesIO(mp4)) as container:
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    assert len(frames) == pytest.approx((recorded.end_at - recorded.start_at) * FPS + 1, abs=1)
    assert all(f[: HEIGHT // 2 - 8, : WIDTH // 2 - 8].max() <= 20 for f in frames)


def test_the_registry_opens_the_pi_camera():
    camera = open_camera(
        "picamera2",
        size=(WIDTH, HEIGHT),
        encoder="libav",
        picamera2=lambda n: FakePicamera2(n, source=scene, fps=FPS),
    )
    try:
        assert isinstance(camera, picam.PiCamera) and camera.encoder_kind == "libav"
    finally:
        camera.close()


def test_a_camera_that_cannot_be_opened_is_named():
    def missing(number: int) -> FakePicamera2:
        raise IndexError("list index out of range")  # what Picamera2(n) raises with no camera

    with pytest.raises(CameraError, match="Pi camera 1: cannot open it"):
        picam.PiCamera(camera_num=1, encoder="libav", picamera2=missing)


def test_a_camera_that_stops_delivering_is_a_camera_error():
    camera, _ = pi_camera(fail_after=5)
    try:
        got = []
        with pytest.raises(CameraError, match=r"no more frames .*timed out"):
            for frame in camera.frames():
                got.append(frame.index)
        assert got == [0, 1, 2, 3, 4]
    finally:
        camera.close()


def test_only_the_pi_backend_imports_picamera2():
    """Nothing else in the package names picamera2, and the rest loads without it."""
    from pathlib import Path

    package = Path(picam.__file__).parents[1]
    importers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "import picamera2" in path.read_text() or "from picamera2" in path.read_text()
    )
    assert importers == ["camera/picam.py"]
    code = (
        "import sys, doorbell.cli, doorbell.pipeline, doorbell.camera;"
        "print([m for m in sys.modules if m.split('.')[0] in ('picamera2', 'libcamera')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_off_a_pi_the_backend_says_what_to_install_or_choose():
    """Without libcamera (any computer but a Pi), opening the Pi camera is a CameraError that
    names the missing library and the fix, not an ImportError."""
    import subprocess
    import sys

    code = (
        "from doorbell.camera import CameraError, open_camera\n"
        "try:\n    open_camera('picamera2')\n"
        "except CameraError as err:\n    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.startswith("the Pi camera backend cannot load libcamera: ")
    assert "apt install python3-picamera2" in out and 'backend = "opencv"' in out


SOURCES_ONLY = ("doorbell.camera.file", "doorbell.camera.opencv", "doorbell.camera.synthetic")


def test_the_service_on_the_pi_camera_loads_no_other_source(tmp_path):
    """The whole service with the Pi camera (picamera2's own code, the stubs below it), run
    until it serves and a bell clip is recorded: the file decoder, the webcam reader and the
    synthetic scene are never imported. The same run on the synthetic camera loads its
    source: the check can see one."""
    code = f"""
import asyncio, dataclasses, sys
from pathlib import Path
from tests.fake_picamera2 import FakePicamera2
from tests.test_picamera2 import scene
from doorbell import trigger
from doorbell.camera import picam
from doorbell.config import CameraSettings, Config, StorageSettings, WebSettings
from doorbell.pipeline import PipelineSettings
from doorbell.service import Service
from tests.owners import pair_owner

picam.PiCamera.__init__.__kwdefaults__["picamera2"] = lambda n: FakePicamera2(n, source=scene)
camera = CameraSettings(backend=sys.argv[1], source=sys.argv[2], width=640, height=360,
                        encoder="libav" if sys.argv[1] == "picamera2" else "auto")
config = dataclasses.replace(
    Config(), camera=camera,
    pipeline=PipelineSettings(policy=trigger.Policy(pre_roll=1.0, post_roll=0.5)),
    storage=StorageSettings(data_dir={str(tmp_path)!r} + "/" + sys.argv[1], min_free_mb=0),
    web=WebSettings(listen="127.0.0.1:0", tls="off"),
)

async def main():
    pair_owner(Path(config.storage.data_dir))  # clips are made for an owner
    service, stop, up = Service(config, demo=True, work_factor=10), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(service.run(stop, ready=lambda s: up.set()))
    await asyncio.wait_for(up.wait(), 60)
    finished = service.bus.subscribe()
    service.press_mock_bell()
    while type(await asyncio.wait_for(finished.get(), 60)).__name__ != "ClipFinished":
        pass
    stop.set()
    await task

asyncio.run(main())
print(" ".join(sorted(m for m in sys.modules if m in {SOURCES_ONLY!r})))
"""

    def loaded(backend: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", code, backend, ""],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.split()

    assert loaded("picamera2") == []
    assert loaded("synthetic") == ["doorbell.camera.synthetic"]
