"""How a picture travels from its source to the encoder: as few moves as the source
allows, masked before anything sees it (law 7), and what is recorded is what came in
(to within the encoder's loss, at the file's own times)."""

import io
import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from doorbell import vault
from doorbell.camera import colour, colour_of
from doorbell.camera.colour import OPENCV_YUV
from doorbell.camera.file import FileCamera
from doorbell.camera.frame import Frame
from doorbell.camera.synthetic import SyntheticCamera, add_noise
from doorbell.camera_loop import CameraLoop
from doorbell.codec import H264Encoder
from doorbell.codec_rules import encoder_threads, keyframe_due, wraps_in_place
from doorbell.config import PipelineSettings
from doorbell.pipeline import BGR, DECODED, I420, Pipeline, frame_route, keeps_frame, shrink
from doorbell.store import VIDEO, ClipStore
from doorbell.trigger import Policy
from tests import scenes

OPENCV = (1, 1, 6)  # BT.709's primaries and transfer (sRGB's), BT.601's matrix
TOP_QUARTER = (((0.0, 0.0), (1.0, 0.0), (1.0, 0.25), (0.0, 0.25)),)
WIDTH, HEIGHT, FPS = 320, 176, 10.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 pictures, in dB."""
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else 10 * np.log10(255**2 / error)


@pytest.fixture(scope="module")
def porch_video(tmp_path_factory) -> Path:
    """3 s of the synthetic porch with a visitor walking in, as a camera's H.264 file."""
    camera = SyntheticCamera(width=WIDTH, height=HEIGHT, fps=FPS, visitors=((0.0, 5.0),))
    frames = [camera.render(n / FPS) for n in range(30)]
    return scenes.write_video(tmp_path_factory.mktemp("porch") / "porch.mp4", frames, FPS)


def source_frames(path: Path) -> list[tuple[float, np.ndarray]]:
    """(time in seconds, BGR) of every frame of a video file, decoded by PyAV."""
    with av.open(str(path)) as container:
        return [
            (frame.time, frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)
        ]


def bell_pipeline(data_dir, width, height, *, masks=(), colour=OPENCV_YUV, bell=True):
    """A pipeline for ``width`` x ``height`` at :data:`FPS` on a fresh store of
    ``data_dir`` (1 s pre-roll, 60 s post-roll), the bell pressed at 0 s unless ``bell``
    is False: (pipeline, store)."""
    store = ClipStore.open(data_dir)
    settings = PipelineSettings(masks=masks, policy=Policy(pre_roll=1.0, post_roll=60.0))
    pipeline = Pipeline(
        store, settings, width, height, FPS, wall_time=lambda t: 1e9 + t, colour=colour
    )
    if bell:
        pipeline.press_bell(0.0)
    return pipeline, store


def record(data_dir, identities, frames, width, height, masks=()):
    """Every frame of ``frames`` through one pipeline, the bell pressed at the first: the
    frames as the pipeline left them, and the clip's (time from its start, BGR) frames."""
    pipeline, store = bell_pipeline(data_dir, width, height, masks=masks)
    seen = []
    for frame in frames:
        pipeline.process(frame)
        seen.append(frame)
    _, clip = finished_clip(pipeline, store, identities)
    return seen, clip


def decrypted_clip(pipeline, store, identities):
    """Finish ``pipeline``'s one clip, close ``store``: the recording and its MP4 bytes,
    decrypted."""
    [recorded] = pipeline.finish()
    with vault.open_file(store.path(recorded.clip.id, VIDEO), identities) as reader:
        mp4 = reader.read()
    store.close()
    return recorded, mp4


def finished_clip(pipeline, store, identities):
    """Finish ``pipeline``'s one clip, close ``store``: the recording and the clip's
    (time from its start, BGR) frames, decrypted and decoded."""
    recorded, mp4 = decrypted_clip(pipeline, store, identities)
    with av.open(io.BytesIO(mp4)) as container:
        clip = [(f.time, f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
    return recorded, clip


def file_frames(path: Path, count: int):
    """The first ``count`` frames of a video file from the file camera, and the camera
    (closed; its size and colour still read): (frames, camera)."""
    camera = FileCamera(str(path))
    try:
        frames = [frame for _, frame in zip(range(count), camera.frames(), strict=False)]
    finally:
        camera.close()
    return frames, camera


# -- the pure parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "small", "within"),
    [
        ((1280, 720), (320, 180), 1),
        ((1920, 1080), (320, 180), 1),
        ((960, 540), (320, 180), 0),
        ((640, 480), (320, 240), 0),
        ((322, 182), (320, 180), 0),
        ((1366, 768), (320, 180), 6),
    ],
)
def test_shrink_is_one_area_resize_to_within_a_grey_level(size, small, within):
    """Halving first (OpenCV's 2x2 mean) changes no pixel by more than 1 against one area
    resize where the sizes divide evenly, also on a plane with padded rows, as a
    decoder's luma comes; where they do not (1366 → 320), each output pixel averages a
    slightly shifted area: a few levels on fine noise, under half a level on average."""
    width, height = size
    noise = np.random.default_rng(3).integers(0, 256, (height, width + 64), dtype=np.uint8)
    padded = cv2.GaussianBlur(noise, (0, 0), 2)[:, :width]  # rows 64 bytes longer
    assert not padded.flags.c_contiguous
    expected = cv2.resize(padded, small, interpolation=cv2.INTER_AREA)
    got = shrink(padded, small)
    assert got.shape == expected.shape == small[::-1]
    difference = np.abs(got.astype(int) - expected)
    assert difference.max() <= within and difference.mean() < 0.5


def test_frame_route_takes_the_fewest_moves():
    size = (640, 360)
    route = frame_route
    # the decoder's own frame, nothing to paint: as it is
    assert route(size, False, decoded=size, i420=None, has_image=False) == DECODED
    # a mask to paint: a packed copy (never the decoder's frame)
    assert route(size, True, decoded=size, i420=None, has_image=False) == I420
    # a packed copy made already (the live view, a turn): that copy
    assert route(size, False, decoded=size, i420=size, has_image=False) == I420
    assert route(size, True, decoded=None, i420=size, has_image=False) == I420
    # a BGR picture made (and maybe painted) already, or only BGR: BGR
    assert route(size, False, decoded=size, i420=None, has_image=True) == BGR
    assert route(size, False, decoded=None, i420=None, has_image=True) == BGR
    # not the encoder's size: BGR, to be fitted
    assert route(size, False, decoded=(642, 360), i420=None, has_image=False) == BGR
    assert route(size, True, decoded=None, i420=(320, 180), has_image=False) == BGR


def test_i420_buffers_reach_the_encoder_whole_whatever_their_height():
    """PyAV's in-place wrap misreads a YUV 4:2:0 buffer whose height is not a multiple of
    4 (640x362 comes out 640x360); such a buffer is copied instead, so every height is
    encoded as it is."""
    assert wraps_in_place(720 * 3 // 2) and wraps_in_place(36 * 3 // 2)
    assert not wraps_in_place(362 * 3 // 2) and not wraps_in_place(38 * 3 // 2)
    rng = np.random.default_rng(5)
    for height in (36, 38):
        texture = cv2.resize(rng.integers(0, 256, (height // 4, 16), np.uint8), (64, height))
        bgr = cv2.merge([texture, 255 - texture, np.full_like(texture, 90)])
        i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        encoder = H264Encoder(64, height, FPS)
        packets = encoder.encode_i420(i420, 0.0) + encoder.flush()
        context = av.CodecContext.create("h264", "r")
        [picture] = [f for p in packets for f in context.decode(av.Packet(p.data))]
        assert (picture.width, picture.height) == (64, height)
        assert psnr(picture.to_ndarray(format="yuv420p"), i420) > 35, height


# -- a video file: the decoder's frame, copied only to be painted -------------------------


def test_a_file_with_no_mask_goes_to_the_encoder_uncopied_and_unchanged(
    data_dir, identities, porch_video
):
    """No mask: no frame is copied out of the decoder or made BGR (but the one whose
    thumbnail is taken), and the clip is the file, frame for frame at the file's own
    times, to within the encoder's loss."""
    camera = FileCamera(str(porch_video))
    try:
        seen, clip = record(data_dir, identities, camera.frames(), WIDTH, HEIGHT)
    finally:
        camera.close()
    assert all(f.decoded is not None for f in seen)
    assert [f.index for f in seen if f.has_i420 or f.has_image] == [0]  # the thumbnail
    source = source_frames(porch_video)
    assert [round(t, 3) for t, _ in clip] == [round(t, 3) for t, _ in source]
    for (_, got), (_, want) in zip(clip, source, strict=True):
        assert psnr(got, want) > 32


def test_masks_are_painted_on_a_copy_never_on_the_decoders_frame(data_dir, identities, porch_video):
    """With a mask each frame is copied out of the decoder once and painted there: the
    decoder's own frames (the references it predicts the next from) keep their pixels,
    so below the mask the clip is still the file; above it, black."""
    camera = FileCamera(str(porch_video))
    band = HEIGHT // 4
    try:
        seen, clip = record(data_dir, identities, camera.frames(), WIDTH, HEIGHT, masks=TOP_QUARTER)
    finally:
        camera.close()
    source = source_frames(porch_video)
    for frame, (_, want) in zip(seen, source, strict=True):
        assert frame.has_i420 and frame.masked
        assert frame.i420 is not None and frame.i420[:band].max() <= 16
        assert frame.image[:band].max() <= 8  # the live view's and thumbnail's BGR
        assert frame.decoded is not None
        luma = frame.decoded.luma()
        assert luma[:band].std() > 5  # the decoder's frame: the porch, not paint
        grey = cv2.cvtColor(want, cv2.COLOR_BGR2GRAY)
        assert psnr(luma[band:], grey[band:]) > 35
    for (_, got), (_, want) in zip(clip, source, strict=True):
        assert got[: band - 4].max() <= 20
        assert psnr(got[band + 4 :], want[band + 4 :]) > 32


def test_frames_not_recorded_are_masked_for_the_live_view_in_yuv(data_dir, porch_video):
    """Before the owner has a key, frames are only masked, for the live view: a file's
    frame is painted in its packed YUV copy, and the BGR the live view makes from it
    shows no masked pixel."""
    camera = FileCamera(str(porch_video))
    shown: list[Frame] = []
    store = ClipStore.open(data_dir)
    settings = PipelineSettings(masks=TOP_QUARTER)
    loop = CameraLoop(
        lambda: camera,
        lambda cam, wall_time: Pipeline(
            store, settings, cam.width, cam.height, cam.fps, wall_time=wall_time
        ),
        can_record=lambda: False,
        on_frame=shown.append,
        wait=lambda seconds: loop.stop(),
    )
    loop.run()
    store.close()
    assert len(shown) == 30 and loop.frames_dropped == 30
    for frame in shown:
        assert frame.masked and frame.has_i420 and not frame.has_image
        assert frame.image[: HEIGHT // 4].max() <= 8


# -- BGR sources: one conversion -------------------------------------------------------------


def test_a_bgr_camera_is_recorded_in_its_own_colours(data_dir, identities):
    """The synthetic porch (BGR, as a webcam gives): converted once to YUV 4:2:0, masked
    before; the clip decodes to the same colours, to within the encoder's loss."""
    camera = SyntheticCamera(width=WIDTH, height=HEIGHT, fps=FPS, visitors=((0.0, 5.0),))
    frames = [Frame(camera.render(n / FPS), n / FPS, n) for n in range(20)]
    pictures = [f.image.copy() for f in frames]
    seen, clip = record(data_dir, identities, frames, WIDTH, HEIGHT, masks=TOP_QUARTER)
    band = HEIGHT // 4
    assert all(f.masked and not f.has_i420 for f in seen)
    assert [round(t, 3) for t, _ in clip] == [round(n / FPS, 3) for n in range(20)]
    for (_, got), want in zip(clip, pictures, strict=True):
        assert got[: band - 4].max() <= 20
        assert psnr(got[band + 4 :], want[band + 4 :]) > 32
        colour = got[band + 4 :].mean(axis=(0, 1)) - want[band + 4 :].mean(axis=(0, 1))
        assert np.abs(colour).max() < 2.0  # B, G, R: no shift from a wrong matrix


def ramp(n: int) -> np.ndarray:
    """A grey ramp from black to white across the picture (BGR), a bar moving down it."""
    grey = np.tile(np.linspace(0, 255, WIDTH).astype(np.uint8), (HEIGHT, 1))
    grey[(n * 8) % HEIGHT : (n * 8) % HEIGHT + 8] = 128
    return np.dstack([grey, grey, grey])


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt"),
    [
        ("webcam.avi", "mjpeg", "yuvj422p"),  # a USB webcam's MJPEG: full range, 4:2:2
        ("phone.mp4", "libx264", "yuvj420p"),  # H.264 in full range
        ("camera.mp4", "libx264", "yuv420p"),  # video range, as most cameras write
        ("camera.mkv", "libx264", "yuv444p"),
    ],
)
def test_a_files_levels_reach_the_clip_whatever_its_range(
    data_dir, identities, tmp_path, name, codec, pix_fmt
):
    """Black stays black and white white: a full-range file (0-255 luma) is brought to
    the clip's video range (16-235) in its one conversion, not passed on to be stretched
    by every player (its 16 shown as 0, its 235 as 255)."""
    pictures = [ramp(n) for n in range(10)]
    path = scenes.write_video(tmp_path / name, pictures, FPS, codec=codec, pix_fmt=pix_fmt)
    frames, _ = file_frames(path, 10)
    _, clip = record(data_dir, identities, frames, WIDTH, HEIGHT)
    shown = source_frames(path)  # what a player shows of the file: FFmpeg reads its range
    assert len(clip) == len(shown) == 10
    columns = {level: int(level / 255 * (WIDTH - 1)) for level in (16, 64, 128, 192, 235)}
    for n, ((_, got), (_, want)) in enumerate(zip(clip, shown, strict=True)):
        bar = (n * 8) % HEIGHT
        rows = slice(bar + 16, bar + 48) if bar < HEIGHT // 2 else slice(bar - 40, bar - 8)
        for level, column in columns.items():
            near = (rows, slice(column - 1, column + 2))
            assert abs(got[near].mean() - want[near].mean()) < 2.5, f"{name}: at {level}"


def described(clip_mp4: bytes) -> tuple[int, int, int]:
    """(primaries, transfer, matrix) an MP4's H.264 says, as H.273 codes (2: not said)."""
    with av.open(io.BytesIO(clip_mp4)) as container:
        context = container.streams.video[0].codec_context
        return int(context.color_primaries), int(context.color_trc), int(context.colorspace)


@pytest.mark.parametrize(
    ("colour", "size", "said"),
    [
        ((1, 1, 1), (WIDTH, HEIGHT), (1, 1, 1)),  # HD video: Rec. 709, passed on as it is
        ((6, 6, 6), (WIDTH, HEIGHT), (6, 6, 6)),  # SD video (the porch footage says this)
        # what a file leaves unsaid is filled in as players guess it (all three are needed)
        (None, (WIDTH, HEIGHT), (1, 1, 6)),  # SD: BT.601's matrix
        (None, (1280, 720), (1, 1, 1)),  # HD: BT.709's
        ((2, 2, 5), (1280, 720), (1, 1, 5)),  # ffmpeg's MJPEG says its matrix alone
        ((1, 1, 1), (WIDTH + 1, HEIGHT + 1), OPENCV),  # odd sides: made BGR, then OpenCV's
    ],
)
def test_a_clip_says_the_colour_of_its_yuv(data_dir, identities, tmp_path, colour, size, said):
    """A clip's H.264 describes its YUV as its source made it, wholly, so a player turns it back
    into the same colours: a file's own description, or BT.601's matrix on sRGB where
    OpenCV converted a BGR picture."""
    pictures = [cv2.resize(ramp(n), size) for n in range(6)]
    path = scenes.write_video(tmp_path / "in.mkv", pictures, FPS, colour=colour, pix_fmt="yuv444p")
    frames, camera = file_frames(path, 6)
    pipeline, store = bell_pipeline(data_dir, camera.width, camera.height, colour=camera.colour)
    for frame in frames:
        pipeline.process(frame)
    _, mp4 = decrypted_clip(pipeline, store, identities)
    assert described(mp4) == said


BARS_BGR = [(0, 0, 230), (0, 200, 0), (230, 0, 0), (120, 160, 220)]  # red, green, blue, skin


def colour_bars(width: int, height: int) -> np.ndarray:
    """A BGR picture of four upright bars, of :data:`BARS_BGR` from left to right."""
    picture = np.zeros((height, width, 3), np.uint8)
    for i, bgr in enumerate(BARS_BGR):
        picture[:, i * width // 4 : (i + 1) * width // 4] = bgr
    return picture


@pytest.mark.parametrize("colour", [(1, 1, 1), (6, 6, 6)], ids=["rec709", "bt601"])
def test_the_live_view_and_thumbnails_show_a_files_colours(tmp_path, data_dir, colour):
    """The BGR picture made of a frame's YUV (the live view's, a thumbnail's) is read by
    the YUV's own matrix: a Rec. 709 file's red read as BT.601 would come out duller."""
    bars = colour_bars(WIDTH, HEIGHT)
    path = scenes.write_video(tmp_path / "bars.mkv", [bars] * 3, FPS, colour=colour)
    [frame], camera = file_frames(path, 1)
    pipeline, store = bell_pipeline(data_dir, WIDTH, HEIGHT, colour=camera.colour, bell=False)
    pipeline.process(frame)
    store.close()
    for i, bgr in enumerate(BARS_BGR):
        shown = frame.image[HEIGHT // 2, i * WIDTH // 4 + WIDTH // 8].astype(int)
        assert np.abs(shown - bgr).max() <= 6, (colour, bgr, shown.tolist())


def test_a_bgr_camera_says_opencvs_colour():
    """The synthetic porch, a webcam: BGR, converted by OpenCV (BT.601's matrix)."""
    assert colour_of(SyntheticCamera(width=WIDTH, height=HEIGHT, fps=FPS)) == OPENCV_YUV
    assert (OPENCV_YUV.primaries, OPENCV_YUV.transfer, OPENCV_YUV.matrix) == OPENCV


def test_the_synthetic_porchs_noise_is_added_with_saturation_as_in_int16():
    """The synthetic camera's sensor noise, added in one saturating int8 pass, gives the
    values int16 arithmetic gives, at the ends of the range too."""
    rng = np.random.default_rng(11)
    picture = rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)
    picture[:10] = 0
    picture[10:20] = 255
    noise = rng.integers(-127, 128, picture.shape, dtype=np.int8)
    expected = (picture.astype(np.int16) + noise).clip(0, 255).astype(np.uint8)
    assert np.array_equal(add_noise(picture.copy(), noise), expected)


def test_opencv_works_on_the_calling_thread(data_dir):
    """A pipeline turns OpenCV's worker pool off: its idle workers would spin between
    the small calls made here."""
    cv2.setNumThreads(2)
    store = ClipStore.open(data_dir)
    try:
        Pipeline(store, PipelineSettings(), 64, 36, FPS, wall_time=lambda t: t)
    finally:
        store.close()
    assert cv2.getNumThreads() == 1


# -- threads ------------------------------------------------------------------------------


def threads_now() -> int:
    """Threads of this process as the kernel counts them (FFmpeg's and OpenCV's too)."""
    return len(os.listdir("/proc/self/task"))


def test_decoding_and_encoding_720p_take_no_thread_of_their_own(data_dir, tmp_path):
    """A 720p file at 10 fps is decoded and encoded on the calling thread: FFmpeg's slice
    threads (and libx264's) cost more CPU than they save at this size, and no thread is
    started for any frame."""
    camera = SyntheticCamera(width=1280, height=720, fps=FPS, visitors=((0.0, 5.0),))
    video = scenes.write_video(
        tmp_path / "720p.mp4", [camera.render(n / FPS) for n in range(12)], FPS
    )
    store = ClipStore.open(data_dir)
    before = threads_now()
    counts = []
    files = FileCamera(str(video))
    try:
        pipeline = Pipeline(store, PipelineSettings(), 1280, 720, FPS, wall_time=lambda t: t)
        for frame in files.frames():
            pipeline.process(frame)
            counts.append(threads_now())
        pipeline.finish()
    finally:
        files.close()
        store.close()
    assert counts == [before] * 12
    assert encoder_threads(1280, 720, 10.0) == 1 and encoder_threads(1920, 1080, 15.0) == 1
    assert encoder_threads(1920, 1080, 30.0) == 0  # past 1080p15: as many as it likes


# -- keyframes by time, and a lower rate while nothing is recorded ----------------------------


def test_keyframes_come_by_time_whatever_the_frame_rate():
    """A keyframe each second of the frames' own times: at 10 fps every 10th frame, and the
    same seconds when the frames come at uneven times (a variable-rate file, a camera
    that drops frames, the pre-roll kept at a lower rate)."""
    assert keyframe_due(0.0, None, 10.0)
    assert keyframe_due(0.96, 1.0, 10.0) and not keyframe_due(0.94, 1.0, 10.0)
    picture = np.full((36 * 3 // 2, 64), 128, np.uint8)
    for times in (
        [n / 10 for n in range(31)],
        [0.0, 0.05, 0.3, 0.35, 0.9, 1.0, 1.1, 1.7, 2.2, 2.25, 2.3, 3.05, 3.1],
        [n / 5 for n in range(16)],
    ):
        encoder = H264Encoder(64, 36, FPS)
        packets = [p for at in times for p in encoder.encode_i420(picture, at)]
        packets += encoder.flush()
        keys = [round(p.at, 3) for p in packets if p.keyframe]
        gaps = np.diff(keys)
        assert keys[0] == 0.0 and all(0.95 <= g < 1.25 for g in gaps), keys
        assert keys[-1] > times[-1] - 1.25


def test_keeps_frame_at_the_idle_rate_only_while_nothing_is_recorded():
    every = [n / 10 for n in range(12)]

    def kept(pre_roll_fps: float, busy: bool = False) -> list[float]:
        last: float | None = None
        out = []
        for at in every:
            if keeps_frame(at, last, pre_roll_fps, 10.0, busy):
                last = at
                out.append(round(at, 1))
        return out

    assert kept(0.0) == kept(5.0, busy=True) == [round(a, 1) for a in every]
    assert kept(5.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert kept(2.5) == [0.0, 0.4, 0.8]
    assert kept(10.0) == kept(0.0)


def test_an_idle_rate_keeps_a_full_pre_roll_at_full_quality(data_dir, identities, tmp_path):
    """pre_roll_fps 5 on a 10 fps camera: while nothing happens every second frame is encoded;
    a press of the bell at 8 s gives a clip whose pre-roll still reaches 5 s back, at 5
    frames a second, then every frame; each frame recorded is the file's at its own
    time, at full size and nearly as sharp as with every frame encoded."""
    camera = SyntheticCamera(width=WIDTH, height=HEIGHT, fps=FPS, visitors=((9.0, 5.0),))
    pictures = [camera.render(n / FPS) for n in range(120)]
    video = scenes.write_video(tmp_path / "quiet.mp4", pictures, FPS)
    source = dict((round(t, 3), bgr) for t, bgr in source_frames(video))
    results = {}
    for pre_roll_fps in (0.0, 5.0):
        store = ClipStore.open(data_dir)
        policy = Policy(pre_roll=5.0, pre_roll_fps=pre_roll_fps, post_roll=60.0)
        settings = PipelineSettings(policy=policy)  # [trigger] pre_roll_fps
        pipeline = Pipeline(store, settings, WIDTH, HEIGHT, FPS, wall_time=lambda t: 1e9 + t)
        files = FileCamera(str(video))
        try:
            for frame in files.frames():
                if frame.index == 80:
                    pipeline.press_bell(frame.at)
                pipeline.process(frame)
        finally:
            files.close()
        recorded, clip = finished_clip(pipeline, store, identities)
        start = recorded.start_at
        results[pre_roll_fps] = [(round(start + t, 3), bgr) for t, bgr in clip]
        assert 8.0 - start >= 5.0  # the whole pre-roll
    full, idle = results[0.0], results[5.0]
    before = [t for t, _ in idle if t < 8.0]
    after = [t for t, _ in idle if t >= 8.0]
    assert before == [t for t, _ in full if t < 8.0][::2]  # every second frame
    assert after == [t for t, _ in full if t >= 8.0]  # then every one
    kept = [psnr(got, source[at]) for at, got in idle[: len(before)]]
    every_one = [psnr(got, source[at]) for at, got in full[: len(before) * 2 : 2]]
    # the same encoder settings at full size: within a dB or two (each frame predicted
    # from one 0.2 s back rather than 0.1 s; 50.8 against 52.6 dB on the real porch)
    assert min(kept) > 38 and np.mean(kept) > np.mean(every_one) - 2.5


def test_the_colour_matrices_agree_with_opencvs_bt601():
    """:func:`colour.ycbcr_to_bgr` derives a matrix from its luma weights: with BT.601's
    it turns YUV into what OpenCV's own conversion makes, so Rec. 709's, derived the same
    way, is right too. Flat colours (saturated ones among them): chroma upsampling, which
    differs at edges, plays no part."""
    matrix = np.array(colour.ycbcr_to_bgr(0.299, 0.114), np.float32)
    for bgr in [(0, 0, 230), (0, 200, 0), (230, 0, 0), (120, 160, 220), (16, 16, 16), (250,) * 3]:
        picture = np.full((HEIGHT, WIDTH, 3), bgr, np.uint8)
        i420 = cv2.cvtColor(picture, cv2.COLOR_BGR2YUV_I420)
        y, u, v = i420[0, 0], i420[HEIGHT, 0], i420[HEIGHT + HEIGHT // 4, 0]
        ours = cv2.transform(np.array([[[y, u, v]]], np.uint8), matrix)[0, 0].astype(int)
        theirs = cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)[0, 0].astype(int)
        assert np.abs(ours - theirs).max() <= 1, (bgr, ours, theirs)
    assert np.array_equal(
        colour.to_bgr(i420, colour.BT601), cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)
    )


@pytest.mark.parametrize("height", [360, 362])
def test_a_rec709_picture_of_any_even_height_is_read_whole(height):
    """A packed YUV 4:2:0 buffer 362 rows high holds chroma planes that do not fill whole
    rows of it: they are read by their size, not by rows."""
    flat = np.full((height, 640, 3), (0, 0, 230), np.uint8)  # BT.601 YUV of red, read as 709
    got = colour.to_bgr(cv2.cvtColor(flat, cv2.COLOR_BGR2YUV_I420), colour.BT709)
    assert got.shape == (height, 640, 3)
    assert np.abs(got.astype(int) - (0, 22, 250)).max() <= 1  # every row, the last too
