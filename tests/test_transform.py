"""Upside-down and sideways cameras: ``[camera] rotation``, ``hflip``, ``vflip``.

The oracle is numpy's own ``rot90`` and slicing, applied in the owner's order (turn
clockwise, then mirror the turned picture); the code under test reduces each setting
to one canonical operation done by OpenCV. The Pi camera runs through
``tests/fake_picamera2.py`` (picamera2's own request and encoder classes), the file
camera over real footage.
"""

import io
import itertools
import types

import av
import cv2
import numpy as np
import pytest

from doorbell import trigger, vault
from doorbell.camera import CameraError, colour_of, encoded_stream, open_camera
from doorbell.camera.colour import REC709, SMPTE170M
from doorbell.camera.file import FileCamera
from doorbell.camera.frame import Frame
from doorbell.camera.transform import (
    Operation,
    Orientation,
    OrientedCamera,
    orient,
    orient_frame,
    orient_i420,
)
from doorbell.pipeline import Pipeline, PipelineSettings
from doorbell.privacy import PrivacyMask
from doorbell.store import VIDEO, ClipStore
from tests.conftest import footage
from tests.fake_picamera2 import FakePicamera2

from doorbell.camera import picam  # isort: skip  (needs the stubs imported above)

SETTINGS = [
    Orientation(rotation, hflip, vflip)
    for rotation, hflip, vflip in itertools.product((0, 90, 180, 270), (False, True), (False, True))
]


def expected(picture: np.ndarray, orientation: Orientation) -> np.ndarray:
    """The owner's words, by numpy: turn clockwise, then mirror what is seen."""
    done = np.rot90(picture, -orientation.rotation // 90)
    if orientation.hflip:
        done = done[:, ::-1]
    if orientation.vflip:
        done = done[::-1]
    return np.ascontiguousarray(done)


def asymmetric() -> np.ndarray:
    """A 5 x 3 BGR picture where every pixel differs, and a 2 x 3 one would too."""
    return np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)


@pytest.mark.parametrize("orientation", SETTINGS, ids=str)
def test_each_setting_is_one_canonical_operation(orientation):
    bgr = asymmetric()
    grey = bgr[:, :, 1].copy()
    operation = orientation.operation
    assert np.array_equal(orient(bgr, operation), expected(bgr, orientation))
    assert np.array_equal(orient(grey, operation), expected(grey, orientation))
    assert orient(bgr, operation).shape[1::-1] == orientation.size(5, 3)


def test_sixteen_settings_are_the_eight_symmetries():
    picture = asymmetric()
    results = {orient(picture, s.operation).tobytes() + bytes(s.size(5, 3)) for s in SETTINGS}
    assert len(results) == 8
    assert len({s.operation for s in SETTINGS}) == 8
    assert {s.operation for s in SETTINGS} == {
        Operation(mirror, turns) for mirror in (False, True) for turns in range(4)
    }


def test_known_pixels_land_where_the_owner_expects():
    """A mark 5 px from the left and 3 px from the top of a 40 x 30 picture."""
    picture = np.zeros((30, 40, 3), np.uint8)
    picture[3, 5] = (0, 0, 255)

    def mark(orientation: Orientation) -> tuple[int, int]:
        done = orient(picture, orientation.operation)
        y, x = np.argwhere(done[:, :, 2] == 255)[0]
        return int(x), int(y)

    assert mark(Orientation()) == (5, 3)
    assert mark(Orientation(180)) == (34, 26)  # upside down: bottom right
    assert mark(Orientation(90)) == (26, 5)  # turned right: top left goes top right
    assert mark(Orientation(270)) == (3, 34)  # turned left: top left goes bottom left
    assert mark(Orientation(hflip=True)) == (34, 3)
    assert mark(Orientation(vflip=True)) == (5, 26)
    assert mark(Orientation(90, hflip=True)) == (3, 5)  # the transpose
    assert mark(Orientation(270, hflip=True)) == (26, 34)  # the anti-transpose


def test_sizes_swap_for_a_quarter_turn():
    assert Orientation(0).size(1280, 720) == Orientation(180).size(1280, 720) == (1280, 720)
    assert Orientation(90).size(1280, 720) == Orientation(270, True).size(1280, 720) == (720, 1280)
    assert Orientation(180, hflip=True, vflip=True).operation.identity


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (dict(rotation=45), r"\[camera\] rotation must be one of 0, 90, 180, 270, got 45"),
        (dict(rotation=-90), "got -90"),
        (dict(rotation="90"), "got '90'"),
        (dict(rotation=True), "got True"),
        (dict(hflip="yes"), r"\[camera\] hflip must be true or false, got 'yes'"),
        (dict(vflip=1), r"\[camera\] vflip must be true or false, got 1"),
    ],
)
def test_a_bad_setting_names_the_key(settings, problem):
    with pytest.raises(ValueError, match=problem):
        Orientation(**settings)


def test_from_settings_before_and_after_the_keys_exist():
    before = types.SimpleNamespace(backend="synthetic")
    after = types.SimpleNamespace(backend="synthetic", rotation=270, hflip=False, vflip=True)
    assert Orientation.from_settings(before) == Orientation()
    assert Orientation.from_settings(after) == Orientation(270, False, True)


def i420_of(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)


def planes(i420: np.ndarray) -> list[np.ndarray]:
    """Y, U, V of a packed (H*3/2, W) buffer."""
    width, height = i420.shape[1], i420.shape[0] * 2 // 3
    flat, luma, chroma = i420.reshape(-1), width * height, width * height // 4
    return [
        flat[:luma].reshape(height, width),
        flat[luma : luma + chroma].reshape(height // 2, width // 2),
        flat[luma + chroma :].reshape(height // 2, width // 2),
    ]


@pytest.mark.parametrize("orientation", SETTINGS, ids=str)
def test_i420_each_plane_turns(orientation):
    """10 x 6: chroma planes of 5 x 3, so U ends mid-row of the packed buffer (H/4 = 1.5)."""
    i420 = np.arange(6 * 3 // 2 * 10, dtype=np.uint8).reshape(9, 10)
    done = orient_i420(i420, orientation.operation)
    width, height = orientation.size(10, 6)
    assert done.shape == (height * 3 // 2, width)
    for got, source in zip(planes(done), planes(i420), strict=True):
        assert np.array_equal(got, expected(source, orientation))


@pytest.mark.parametrize("orientation", SETTINGS, ids=str)
def test_i420_round_trip_matches_the_turned_picture(orientation):
    rng = np.random.default_rng(7)
    bgr = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (32, 24))
    i420 = i420_of(bgr)
    as_seen = cv2.cvtColor(orient_i420(i420, orientation.operation), cv2.COLOR_YUV2BGR_I420)
    assert np.array_equal(
        as_seen, expected(cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420), orientation)
    )


def test_an_odd_sided_i420_buffer_is_refused():
    with pytest.raises(ValueError, match="not an even-sided picture"):
        orient_i420(np.zeros((9, 7), np.uint8), Orientation(90).operation)


def test_a_frame_keeps_its_time_number_and_flags():
    bgr = asymmetric()
    frame = Frame(None, 1.5, 7, i420=i420_of(cv2.resize(bgr, (8, 6))), grey=bgr[:, :, 0].copy())
    done = orient_frame(frame, Orientation(90).operation)
    assert (done.at, done.index, done.masked, done.has_image) == (1.5, 7, False, False)
    assert done.i420.shape == (12, 6) and done.grey.shape == (5, 3)
    assert orient_frame(frame, Operation()) is frame


@pytest.mark.parametrize("orientation", SETTINGS, ids=str)
def test_what_the_sensor_mirrors_and_software_turns_add_up(orientation):
    (hflip, vflip), rest = orientation.operation.on_sensor()
    picture = asymmetric()
    sensor = picture[:, ::-1] if hflip else picture
    sensor = sensor[::-1] if vflip else sensor
    assert rest.turns in ((1, 3) if orientation.operation.swaps else (0,)) and not rest.mirror
    assert np.array_equal(
        orient(np.ascontiguousarray(sensor), rest), expected(picture, orientation)
    )


# -- cameras ---------------------------------------------------------------------------------


def test_a_turned_file_camera_over_real_footage():
    path = str(footage("porch-visitors.mp4"))
    plain = FileCamera(path)
    turned = open_camera("opencv", source=path, orientation=Orientation(90))
    try:
        assert (plain.width, plain.height) == (768, 432)
        assert isinstance(turned, OrientedCamera)
        assert (turned.width, turned.height, turned.fps) == (432, 768, plain.fps)
        pairs = zip(plain.frames(), turned.frames(), range(12), strict=False)
        for before, after, _ in pairs:
            assert (after.at, after.index) == (before.at, before.index)
            assert after.i420.shape == (768 * 3 // 2, 432) and not after.has_image
            assert np.array_equal(after.image, expected(before.image, Orientation(90)))
    finally:
        plain.close()
        turned.close()


def test_no_turn_no_wrapper():
    camera = open_camera("synthetic", orientation=Orientation(180, hflip=True, vflip=True))
    assert not isinstance(camera, OrientedCamera)
    camera.close()


def recorded_greys(data_dir, identities, camera, masks, *, press, last=None, encoded=None):
    """``camera``'s frames through a real Pipeline with ``masks`` (the bell pressed at frame
    ``press``, frames up to ``last``), the clip decrypted and decoded: its grey frames."""
    store = ClipStore.open(data_dir)
    policy = trigger.Policy(pre_roll=0.0, post_roll=0.5, motion_starts=False)
    pipeline = Pipeline(
        store,
        PipelineSettings(policy=policy, masks=masks),
        camera.width,
        camera.height,
        camera.fps,
        wall_time=lambda t: 1_700_000_000 + t,
        encoded=encoded,
    )
    try:
        for frame in camera.frames():
            if frame.index == press:
                pipeline.press_bell(frame.at)
            pipeline.process(frame)
            if frame.index == last:
                break
        [recorded] = pipeline.finish()
    finally:
        camera.close()
        store.close()
    clip = ClipStore.open(data_dir).path(recorded.clip.id, VIDEO)
    with vault.open_file(clip, identities) as f, av.open(io.BytesIO(f.read())) as container:
        return [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]


def test_a_turned_synthetic_camera_is_recorded_turned(data_dir, identities):
    """The pipeline takes the turned size, masks in the turned picture and records it so."""
    mask = [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.25), (0.0, 0.25)]]  # the top of the turned picture
    camera = open_camera(
        "synthetic", width=160, height=96, fps=10.0, duration=3.0, orientation=Orientation(270)
    )
    greys = recorded_greys(data_dir, identities, camera, mask, press=2)
    assert greys and greys[0].shape == (160, 96)
    for grey in greys:
        assert grey[: 40 - 4, : 48 - 4].max() <= 20  # masked (less a codec margin)
        assert grey[48:].mean() > 50


def test_a_mask_drawn_on_the_turned_picture_lands_there():
    """privacy.PrivacyMask in the owner's coordinates, on a turned camera's frame."""
    picture = np.full((60, 80, 3), 200, np.uint8)
    picture[:, :10] = 50  # the left edge as the camera sees it: the bottom once turned 270
    frame = orient_frame(Frame(picture, 0.0, 0), Orientation(270).operation)
    bottom = [[(0.0, 0.75), (1.0, 0.75), (1.0, 1.0), (0.0, 1.0)]]
    masked = PrivacyMask(bottom).apply(frame.image)
    assert masked.shape == (80, 60, 3)
    assert (masked[60:] == 0).all() and (masked[:60] == 200).all()


# -- the Pi camera ---------------------------------------------------------------------------

WIDTH, HEIGHT, FPS = 320, 192, 15.0


def scene(at: float) -> np.ndarray:
    """Grey 100, bright in the top-left quarter as the sensor reads it."""
    image = np.full((HEIGHT, WIDTH, 3), 100, np.uint8)
    image[: HEIGHT // 2, : WIDTH // 2] = 240
    return image


def pi(orientation: Orientation, made: list, **options) -> object:
    def factory(number: int) -> FakePicamera2:
        fake = FakePicamera2(number, source=scene, fps=FPS, align=64)
        made.append(fake)
        return fake

    return open_camera(
        "picamera2",
        orientation=orientation,
        size=(WIDTH, HEIGHT),
        fps=FPS,
        encoder="libav",
        picamera2=factory,
        **options,
    )


def sensor_transform(fake: FakePicamera2) -> tuple[bool, bool, bool]:
    took = fake.camera_configuration()["transform"]
    return bool(took.hflip), bool(took.vflip), bool(took.transpose)


@pytest.mark.parametrize(
    ("orientation", "flips"),
    [
        (Orientation(180), (True, True, False)),
        (Orientation(hflip=True), (True, False, False)),
        (Orientation(vflip=True), (False, True, False)),
        (Orientation(180, hflip=True), (False, True, False)),
        (Orientation(), (False, False, False)),
    ],
    ids=str,
)
def test_the_pi_mirrors_on_its_sensor(orientation, flips):
    made: list[FakePicamera2] = []
    camera = pi(orientation, made, masks=[[(0.0, 0.0), (0.25, 0.0), (0.25, 0.25), (0.0, 0.25)]])
    try:
        assert isinstance(camera, picam.PiCamera) and encoded_stream(camera) is not None
        assert sensor_transform(made[0]) == flips
        frame = next(iter(camera.frames()))
        luma = frame.i420[:HEIGHT]
        # the bright quarter is where the owner sees it; the mask in the owner's top left
        bright = expected(scene(0)[:, :, 0], orientation) > 170
        assert (luma[: HEIGHT // 4, : WIDTH // 4] == 0).all()
        seen = luma[HEIGHT // 4 + 1 :] > 170  # below the mask (its edge row is masked too)
        assert np.array_equal(seen, bright[HEIGHT // 4 + 1 :])
        assert frame.grey is not None and (frame.grey[: 48 - 1, : 80 - 1] == 0).all()
    finally:
        camera.close()


@pytest.mark.parametrize("orientation", [Orientation(90), Orientation(270, hflip=True)], ids=str)
def test_a_quarter_turn_on_the_pi_is_done_in_software(orientation):
    made: list[FakePicamera2] = []
    camera = pi(orientation, made, masks=[[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5)]])
    try:
        assert isinstance(camera, OrientedCamera) and encoded_stream(camera) is None
        assert (camera.width, camera.height) == (HEIGHT, WIDTH)
        assert colour_of(camera) == SMPTE170M  # picamera2's below 1280x720: said in clips
        (fake,) = made
        assert fake.camera_config["lores"] is None and not fake.encoders
        assert sensor_transform(fake) == (orientation.hflip, False, False)
        frames = [f for f, _ in zip(camera.frames(), range(3), strict=False)]
    finally:
        camera.close()
    assert fake.closed
    assert [f.at for f in frames] == pytest.approx([0.0, 1 / FPS, 2 / FPS])
    for frame in frames:  # unmasked: the pipeline masks the turned picture
        assert frame.i420.shape == (WIDTH * 3 // 2, HEIGHT) and not frame.masked
        bright = expected(scene(0)[:, :, 0], orientation) > 170
        assert np.array_equal(frame.i420[:WIDTH] > 170, bright)


def test_the_pi_cameras_yuv_is_rec709_in_hd_and_smpte170m_below():
    assert picam.video_colour(1280, 720) == picam.video_colour(1920, 1080) == REC709
    assert picam.video_colour(640, 480) == picam.video_colour(1280, 480) == SMPTE170M


def test_a_sideways_pi_is_masked_and_recorded_turned(data_dir, identities):
    """Rotation 90 on the Pi: the pipeline masks the turned picture in the owner's
    coordinates (top left: the sensor's bottom left) and encodes it; the sensor's bright
    top-left quarter is the owner's top right."""
    camera = pi(Orientation(90), [])
    top_left = [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]]
    greys = recorded_greys(
        data_dir, identities, camera, top_left, press=1, last=20, encoded=encoded_stream(camera)
    )
    assert len(greys) >= 8 and greys[0].shape == (WIDTH, HEIGHT)  # 192 wide, 320 high
    for grey in greys:
        assert grey[: WIDTH // 2 - 8, : HEIGHT // 2 - 8].max() <= 20  # masked
        assert grey[: WIDTH // 2 - 8, HEIGHT // 2 + 8 :].mean() == pytest.approx(240, abs=8)
        assert grey[WIDTH // 2 + 8 :].mean() == pytest.approx(100, abs=8)


def test_a_quarter_turn_cannot_have_the_hardware_encoder():
    with pytest.raises(CameraError, match="hardware encoder cannot take a picture turned 90"):
        picam.open_pi_camera(orientation=Orientation(270), encoder="hardware", picamera2=None)


def test_a_pi_that_will_not_mirror_is_a_camera_error():
    class Stubborn(FakePicamera2):
        def configure(self, config: dict) -> None:
            from libcamera import Transform

            super().configure(config | {"transform": Transform()})

    with pytest.raises(CameraError, match=r"Pi camera 0: cannot start it \(it cannot mirror"):
        picam.open_pi_camera(
            orientation=Orientation(180),
            size=(WIDTH, HEIGHT),
            encoder="libav",
            picamera2=lambda n: Stubborn(n, source=scene),
        )


def test_a_camera_that_encodes_itself_is_not_turned_afterwards():
    camera = pi(Orientation(), [])
    try:
        with pytest.raises(ValueError, match="encodes its own pictures"):
            OrientedCamera(camera, Orientation(90))
    finally:
        camera.close()


@pytest.mark.parametrize(
    ("rotation", "size"), [(0, (640, 360)), (90, (360, 640)), (180, (640, 360)), (270, (360, 640))]
)
def test_the_service_opens_its_camera_turned_as_the_config_says(rotation, size):
    """``[camera] rotation`` reaches the camera the service opens (camera_options)."""
    from doorbell.camera import open_camera
    from doorbell.config import CameraSettings, Config
    from doorbell.service import camera_options

    settings = CameraSettings(backend="synthetic", width=640, height=360, rotation=rotation)
    backend, options = camera_options(Config(camera=settings))
    camera = open_camera(backend, **options)
    try:
        assert (camera.width, camera.height) == size
        frame = next(iter(camera.frames()))
        assert frame.image.shape[:2] == size[::-1]
    finally:
        camera.close()
