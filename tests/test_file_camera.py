"""A video file as the camera (camera/file.py, decoded by codec.VideoFile): times from the
file's own timestamps, damaged data skipped and named, anything but camera video refused.

Every video here is generated at run time (tests/scenes.py), so the file runs on a bare
clone; the real footage, where it is there, is checked too.
"""

import fractions
import itertools
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from doorbell.camera import CameraError, is_live, open_camera
from doorbell.camera import file as file_camera
from doorbell.camera.file import Damage, FileCamera, FrameTimes
from tests import scenes
from tests.conftest import footage


@pytest.fixture(scope="module")
def uneven(tmp_path_factory) -> tuple[Path, list[float]]:
    """A variable-frame-rate file (4 fps for 10 s, then 15 fps) and its frames' times."""
    scene = scenes.uneven_porch()
    path = tmp_path_factory.mktemp("uneven") / "uneven.mp4"
    return scenes.write_video(path, scene.frames, 15, times=scene.times), scene.times


@pytest.fixture(scope="module")
def steady(tmp_path_factory) -> Path:
    """Two seconds of the porch at 10 fps: 20 frames."""
    camera = open_camera("synthetic", width=160, height=90, fps=10, duration=2.0)
    frames = [f.image for f in camera.frames()]
    return scenes.write_video(tmp_path_factory.mktemp("steady") / "steady.mp4", frames, 10)


def pts_of(path: Path) -> list[float]:
    """The presentation times PyAV reads from ``path``, relative to the first, in order."""
    with av.open(str(path)) as container:
        times = sorted(float(f.pts * f.time_base) for f in container.decode(video=0))
    return [t - times[0] for t in times]


def test_frame_times_are_the_files_own_presentation_times(uneven):
    """4 fps then 15 fps: every frame at its pts, not at index / the average rate."""
    path, times = uneven
    camera = FileCamera(str(path))
    got = [frame.at for frame in camera.frames()]
    camera.close()
    assert got == pytest.approx(times, abs=1e-6)
    assert got == pytest.approx(pts_of(path), abs=1e-9)
    assert camera.fps == pytest.approx(len(times) / 30.0, rel=0.01)  # the average, 11.3
    assert got[100] == pytest.approx(10.0 + 60 / 15)  # index / fps would say 8.8 s


def test_real_footage_times_are_its_pts():
    """waving-tree.mp4 (15 fps, time base 1/15360): the camera's times are its pts."""
    path = footage("waving-tree.mp4")
    camera = FileCamera(str(path))
    got = [frame.at for frame in camera.frames()]
    camera.close()
    assert len(got) == 287
    assert got == pytest.approx(pts_of(path), abs=1e-9)
    assert got[-1] == pytest.approx(286 / 15, abs=1e-3)


def test_a_loop_keeps_time_increasing(steady):
    """The second pass starts one frame (1/fps) after the first pass's last frame."""
    camera = FileCamera(str(steady), loop=True)
    frames = camera.frames()
    got = [next(frames).at for _ in range(45)]
    camera.close()
    assert got[:20] == pytest.approx([i / 10 for i in range(20)])
    assert got[20:40] == pytest.approx([2.0 + i / 10 for i in range(20)])
    assert got[40] == pytest.approx(4.0)
    assert all(b > a for a, b in itertools.pairwise(got))


def test_frame_times_never_go_back():
    """A frame repeated or a little out of order (after damage) is dropped (None), not
    a shift of every later time; a clock that starts again (two recordings joined) is a
    new stretch one step on; a frame without a time comes one step after the last."""
    times = FrameTimes(0.1)
    got = [times.at(pts) for pts in (100.0, 100.5, 100.5, 100.2, 100.6, 3.0, 3.2, None, 3.4)]
    assert got[:3] == pytest.approx([0.0, 0.5, None])
    assert got[3:] == pytest.approx([None, 0.6, 0.7, 0.9, 1.0, 1.1])
    times.new_pass()
    assert times.at(100.0) == pytest.approx(1.2)


def test_realtime_paces_by_the_files_times(uneven):
    """With ``realtime`` each frame waits until its own time on the clock: 0.25 s apart
    at first, then 1/15 s; the fake clock moves only when the camera sleeps."""
    path, times = uneven
    now = [1000.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    camera = FileCamera(str(path), realtime=True, clock=lambda: now[0], sleep=sleep)
    shown = []
    for frame in camera.frames():
        shown.append(now[0] - 1000.0)
        if frame.index == 45:
            break
    camera.close()
    assert shown == pytest.approx(times[:46])
    assert waits[1] == pytest.approx(0.25) and waits[45] == pytest.approx(1 / 15, abs=1e-3)


def test_realtime_skips_the_frames_a_slow_reader_is_too_late_for(uneven):
    """Like a camera, a real-time file does not wait for its reader: after the reader
    spends 1 s on one frame, the frames due more than MISSED_AFTER ago are skipped and
    their numbers left out of ``index``; the next frame shown is one still in time."""
    path, times = uneven
    now = [1000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    camera = FileCamera(str(path), realtime=True, clock=lambda: now[0], sleep=sleep)
    frames = camera.frames()
    first = [next(frames) for _ in range(20)]
    now[0] += 1.0  # the reader was busy for a second
    after = next(frames)
    camera.close()
    late = now[0] - 1000.0 - after.at  # how late the frame shown after the stall is
    assert 0 <= late <= file_camera.MISSED_AFTER
    skipped = after.index - first[-1].index - 1
    due_in_the_gap = [t for t in times if first[-1].at < t < after.at]
    assert skipped == len(due_in_the_gap) > 0
    cutoff = first[-1].at + 1.0 - file_camera.MISSED_AFTER
    assert after.at == pytest.approx(min(t for t in times if t >= cutoff))


def bad_packets(path: Path) -> tuple[int, list[float]]:
    """What PyAV alone makes of a damaged file: the frames that decode, and the times of
    the packets that do not (seconds from the first frame)."""
    frames, bad = 0, []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames += len(packet.decode())
            except av.error.InvalidDataError:
                bad.append(float(packet.pts * stream.time_base))
    return frames, bad


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    """40 s of porch at 10 fps (400 frames) with 20 kB of noise in the middle of its data."""
    scene = scenes.porch(duration=40.0)
    path = tmp_path_factory.mktemp("damaged") / "porch.mp4"
    return scenes.damage(scenes.write_video(path, scene.frames, scene.fps))


def test_damaged_data_is_skipped_and_named(damaged):
    """Decoding goes on after the damage: as many frames as PyAV can decode, and one
    report from the first bad packet to the first good frame after it."""
    decodable, bad = bad_packets(damaged)
    assert bad and 5 < bad[0] < 35  # the damage is in the middle, as made
    reports: list[Damage] = []
    camera = FileCamera(str(damaged), on_damage=reports.append)
    times = [frame.at for frame in camera.frames()]
    camera.close()
    assert len(times) == decodable > 380  # OpenCV stopped at the damage
    assert times[-1] == pytest.approx(39.9)
    [damage] = camera.damaged
    assert reports == [damage]
    assert damage.start == pytest.approx(bad[0])
    after = min(t for t in times if t > damage.start)
    assert damage.end == pytest.approx(after) and damage.end > bad[-1]
    assert damage.describe("porch.mp4") == (
        f"porch.mp4: damaged video from {bad[0]:.1f} s to {after:.1f} s skipped"
    )


def test_damage_is_logged_by_default(damaged, caplog):
    camera = FileCamera(str(damaged))
    sum(1 for _ in camera.frames())
    camera.close()
    [damage] = camera.damaged
    assert caplog.messages == [damage.describe(str(damaged))]


# -- what is not camera video is refused, naming the file ----------------------------------


def jpeg(path: Path) -> Path:
    image = np.random.default_rng(1).integers(0, 255, (120, 160, 3), np.uint8)
    path.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    return path


def sound(path: Path, cover: bool = False) -> Path:
    """One second of silence in an MP4 (AAC), as a voice memo is; with ``cover``, a cover
    picture too, as a music file has."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=8000)
        packets = []
        if cover:
            picture = out.add_stream("mjpeg", rate=1)
            picture.width, picture.height, picture.pix_fmt = 160, 120, "yuvj420p"
            picture.disposition = av.stream.Disposition.attached_pic.value  # an int for PyAV 14
            image = av.VideoFrame.from_ndarray(np.zeros((120, 160, 3), np.uint8), format="bgr24")
            packets += [*picture.encode(image), *picture.encode(None)]
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.float32), "fltp", "mono")
        frame.sample_rate, frame.pts, frame.time_base = 8000, 0, fractions.Fraction(1, 8000)
        for packet in [*packets, *stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


NOT_VIDEO = {
    "notes.txt": (
        lambda p: p.write_text("Shopping list\n- milk\n- eggs\n" * 20),
        "not a video file (doorbell reads MP4, MOV, MKV, WebM, AVI, MPEG-TS, MPEG-PS, FLV or WMV)",
    ),
    "empty.mp4": (lambda p: p.write_bytes(b""), "the file is empty, not a video"),
    "photo.mp4": (jpeg, "not a video file (doorbell reads"),
    "random.mp4": (
        lambda p: p.write_bytes(np.random.default_rng(2).bytes(50_000)),
        "not a video file, or its header is damaged",
    ),
    "memo.m4a": (sound, "no video in it, only audio"),
    "song.m4a": (lambda p: sound(p, cover=True), "no video in it, only audio and a still picture"),
    "list.m3u8": (
        lambda p: p.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nsteady.mp4\n"),
        "not a video file (doorbell reads",
    ),
    "clip.h264": (
        lambda p: p.write_bytes(b"\x00\x00\x00\x01\x67" + bytes(2000)),
        "a raw H.264/H.265 stream has no frame times",
    ),
    "folder.mp4": (lambda p: p.mkdir(), "a folder, not a video file"),
    "gone.mp4": (lambda p: None, "no such video file"),
}


@pytest.mark.parametrize("name", NOT_VIDEO)
def test_what_is_not_camera_video_is_refused_by_name(name, tmp_path, steady):
    """A text file (FFmpeg's tty demuxer would draw it as ANSI art), a photo, noise, sound
    alone or with a cover picture, a playlist (FFmpeg would follow it to other files or hosts), raw H.264 (no
    frame times): a CameraError that names the file, from either way of opening it."""
    (tmp_path / "steady.mp4").write_bytes(steady.read_bytes())  # the playlist's target
    make, reason = NOT_VIDEO[name]
    path = tmp_path / name
    make(path)
    for opening in (lambda: FileCamera(str(path)), lambda: open_camera("opencv", source=str(path))):
        with pytest.raises(CameraError) as info:
            opening()
        assert str(info.value).startswith(f"{path}: {reason}")
        assert "\n" not in str(info.value)


# -- which camera a source is ---------------------------------------------------------------


def test_a_file_source_opens_the_file_camera_and_a_live_one_opencv(steady):
    """``backend = "opencv"`` with a file is the file camera (PyAV); an index, a device or
    a URL stays OpenCV's."""
    camera = open_camera("opencv", source=str(steady), realtime=False, loop=True)
    assert isinstance(camera, FileCamera) and camera.loop
    assert (camera.width, camera.height, camera.fps) == (160, 90, 10.0)
    camera.close()
    assert all(is_live(s) for s in ("0", 2, "rtsp://cam/1", "http://cam/v.mjpg", "/dev/null"))
    assert not any(is_live(s) for s in (str(steady), "porch.mp4", "/dev/nothing-here"))


def test_the_service_refuses_a_text_file_as_its_camera(tmp_path):
    """``[camera] backend = "opencv"`` with a text file: the service's camera open fails
    with the same line (its camera loop reports it and tries again), nothing recorded."""
    from doorbell.config import CameraSettings, Config
    from doorbell.service import camera_options

    notes = tmp_path / "notes.txt"
    notes.write_text("not a video\n" * 50)
    config = Config(camera=CameraSettings(backend="opencv", source=str(notes)))
    backend, options = camera_options(config)
    with pytest.raises(CameraError) as info:
        open_camera(backend, **options)
    assert str(info.value) == f"{notes}: {NOT_VIDEO['notes.txt'][1]}"


def test_odd_sizes_come_as_they_are(tmp_path):
    """A 641x481 file gives 641x481 BGR frames (the pipeline fits them for its encoder)."""
    frames = [np.full((481, 641, 3), 40 * i, np.uint8) for i in range(3)]
    path = scenes.write_video(tmp_path / "odd.mp4", frames, 10)
    camera = FileCamera(str(path))
    images = [frame.image for frame in camera.frames()]
    camera.close()
    assert (camera.width, camera.height) == (641, 481)
    assert [image.shape for image in images] == [(481, 641, 3)] * 3
    assert [int(image.mean()) for image in images] == pytest.approx([0, 40, 80], abs=2)


def test_pictures_match_what_opencv_decodes(steady):
    """The same pixels as OpenCV's decoder gave (both FFmpeg, BT.601), within rounding."""
    capture = cv2.VideoCapture(str(steady))
    ok, expected = capture.read()
    capture.release()
    camera = FileCamera(str(steady))
    image = next(camera.frames()).image
    camera.close()
    assert ok and image.shape == expected.shape
    assert np.abs(image.astype(int) - expected).mean() < 1.5


def test_no_ffmpeg_noise_on_stderr(damaged, capfd):
    """Skipping damage prints nothing of FFmpeg's own (the report is the one line)."""
    camera = FileCamera(str(damaged), on_damage=lambda d: None)
    sum(1 for _ in camera.frames())
    camera.close()
    assert capfd.readouterr().err == ""
