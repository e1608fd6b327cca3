"""`doorbell replay` on footage: the whole path from frames to encrypted clips.

Each test runs on a video generated at run time (tests/scenes.py, written with
PyAV) always, and on the real clip of shared/footage when it is there
(tests/conftest.py: footage).
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from doorbell.camera import open_camera
from doorbell.store import Keyring
from tests import scenes
from tests.conftest import PASSPHRASE, footage

TOP_BAND = [[[0.0, 0.0], [1.0, 0.0], [1.0, 0.25], [0.0, 0.25]]]
DOORBELL = [sys.executable, "-m", "doorbell"]


@pytest.fixture(scope="module")
def owner(tmp_path_factory):
    """A data dir with owner keys, and the exported identity for the stock age."""
    root = tmp_path_factory.mktemp("replay")
    data = root / "data"
    keyring = Keyring.in_data_dir(data)
    keyring.init(PASSPHRASE, work_factor=10)
    identity = root / "identity.txt"
    identity.write_text(keyring.unlock(PASSPHRASE)[0].secret() + "\n")
    return data, identity


def replay(data: Path, video: Path, *args: str, env: dict | None = None) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "doorbell",
            "replay",
            str(video),
            "--data-dir",
            str(data),
            "--json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def decrypt_with_age(identity: Path, path: str) -> bytes:
    return subprocess.run(
        ["age", "-d", "-i", str(identity), path], capture_output=True, check=True
    ).stdout


@pytest.fixture(scope="module", params=["generated", "real"])
def waving_tree(request, tmp_path_factory) -> tuple[Path, int]:
    """A video of a tree in the wind, nobody, and the frame where a person enters."""
    if request.param == "real":
        return footage("waving-tree.mp4"), scenes.REAL_TREE_PERSON
    scene = scenes.waving_tree()
    video = tmp_path_factory.mktemp("tree") / "waving-tree.mp4"
    return scenes.write_video(video, scene.frames, scene.fps), scene.person


@pytest.fixture(scope="module", params=["generated", "real"])
def porch(request, owner, tmp_path_factory) -> dict:
    """Visitors one at a time, the top quarter masked, the bell pressed in an empty
    stretch: the replay's summary, and what the video holds (visits, empty, bell_at)."""
    data, _ = owner
    config = tmp_path_factory.mktemp("config") / "doorbell.toml"
    config.write_text(f"[privacy]\nmasks = {json.dumps(TOP_BAND)}\n")
    if request.param == "real":
        video, bell_at = footage("porch-visitors.mp4"), 30.0
        visits, empty = scenes.REAL_PORCH_VISITS, scenes.REAL_PORCH_EMPTY
    else:
        scene = scenes.porch()
        video = tmp_path_factory.mktemp("porch") / "porch.mp4"
        scenes.write_video(video, scene.frames, scene.fps)
        visits, empty, bell_at = scene.visits, scene.empty, 14.0
    summary = replay(data, video, "--bell-at", str(bell_at), "--config", str(config))
    return {**summary, "visits": visits, "empty": empty, "bell_at": bell_at}


def test_waving_tree_motion_starts_only_with_the_person(owner, waving_tree):
    video, person_frame = waving_tree
    summary = replay(owner[0], video)
    motion = [e for e in summary["events"] if e["kind"] == "motion"]
    person = person_frame / summary["fps"]
    assert motion and all(e["start_s"] >= person for e in motion), motion
    assert motion[0]["start_s"] <= person + 1.0


def test_porch_every_visitor_and_nothing_in_the_empty_stretches(porch):
    starts = [e["start_s"] * porch["fps"] for e in porch["events"] if e["kind"] == "motion"]
    for quiet in porch["empty"]:
        assert not any(quiet[0] <= s <= quiet[1] for s in starts), (quiet, starts)
    for visit in porch["visits"]:
        assert any(visit[0] <= s <= visit[1] for s in starts), (visit, starts)


def test_a_bell_gives_a_clip_with_5_s_of_pre_roll(porch, owner):
    _, identity = owner
    [bell] = [c for c in porch["clips"] if c["trigger"] == "bell"]
    assert 5.0 <= bell["preroll_s"] < 5.0 + 1.0  # within one keyframe interval
    assert bell["start_s"] == pytest.approx(porch["bell_at"] - bell["preroll_s"])
    mp4 = decrypt_with_age(identity, bell["file"])
    assert mp4[4:8] == b"ftyp"
    with av.open(io.BytesIO(mp4)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert times[0] == 0.0
    assert times[-1] == pytest.approx(bell["end_s"] - bell["start_s"], abs=0.11)
    assert len(times) == pytest.approx((bell["end_s"] - bell["start_s"]) * porch["fps"] + 1, abs=1)


def test_masked_regions_are_constant_in_every_frame_and_the_thumbnail(porch, owner):
    _, identity = owner
    for clip in porch["clips"]:
        with av.open(io.BytesIO(decrypt_with_age(identity, clip["file"]))) as container:
            for frame in container.decode(video=0):
                grey = frame.to_ndarray(format="gray")
                band = grey[: grey.shape[0] // 4 - 8]  # the masked quarter, less a codec margin
                assert band.max() <= 20 and band.std() < 1.0, clip["id"]
        thumb = decrypt_with_age(identity, clip["file"].replace(".mp4.age", ".jpg.age"))
        image = cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert image[: image.shape[0] // 4 - 8].max() <= 20


def test_no_mp4_or_jpeg_bytes_anywhere_on_disk(owner, waving_tree, tmp_path):
    """The data dir and the replay's own temp dir hold no MP4 or JPEG, whole or in part."""
    data, _ = owner
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    summary = replay(data, waving_tree[0], "--bell-at", "3", env={"TMPDIR": str(scratch)})
    assert summary["clips"]
    # 8 bytes or more each: random ciphertext never holds them by chance
    signatures = (b"ftypiso5", b"\x00\x00\x00\x10mfhd", b"\xff\xd8\xff\xe0\x00\x10JFIF")
    for place in (data, scratch):
        for path in place.rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert not any(s in content for s in signatures), path


# -- times from the file's own timestamps ---------------------------------------------------


def clip_times(identity: Path, clip: dict) -> list[float]:
    """The presentation times of a clip's frames (seconds from its first frame)."""
    with av.open(io.BytesIO(decrypt_with_age(identity, clip["file"]))) as container:
        return [frame.time for frame in container.decode(video=0)]


def test_a_variable_frame_rate_file_keeps_its_true_times(owner, tmp_path):
    """4 fps for 10 s, then 15 fps: the visitor who arrives at 14 s starts motion at 14 s
    (index / the average rate would say 8.8 s), and every time in the summary and in the
    bell's clip is one of the file's own presentation times."""
    _, identity = owner
    scene = scenes.uneven_porch()
    video = scenes.write_video(tmp_path / "uneven.mp4", scene.frames, 15, times=scene.times)
    summary = replay(owner[0], video, "--bell-at", "20")
    motion = next(e for e in summary["events"] if e["kind"] == "motion")  # walking in
    assert scene.arrival <= motion["start_s"] <= scene.arrival + 1.0
    times = {round(t, 3) for t in scene.times}
    [bell] = [c for c in summary["clips"] if c["trigger"] == "bell"]
    for moment in (motion["start_s"], motion["end_s"], bell["start_s"], bell["end_s"]):
        assert moment in times
    assert bell["end_s"] == scene.times[-1]
    assert 5.0 <= bell["preroll_s"] < 6.0
    inside = [t - bell["start_s"] for t in scene.times if bell["start_s"] <= t <= bell["end_s"]]
    assert clip_times(identity, bell) == pytest.approx(inside, abs=1e-3)


# -- damaged data ----------------------------------------------------------------------------


def test_a_damaged_file_is_replayed_past_the_damage(owner, tmp_path):
    """20 kB of noise in the middle of a 40 s file: replay warns once naming the file and
    the stretch, decodes every frame PyAV can, and the bell pressed after the damage gives
    a clip that plays (OpenCV used to stop at the damage, exit 0, no word)."""
    _, identity = owner
    scene = scenes.porch(duration=40.0)
    video = scenes.damage(scenes.write_video(tmp_path / "porch.mp4", scene.frames, scene.fps))
    decodable, bad = 0, []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                decodable += len(packet.decode())
            except av.error.InvalidDataError:
                bad.append(float(packet.pts * stream.time_base))
    assert bad and bad[-1] < 30.0  # what the file holds: damage before the bell
    result = subprocess.run(
        [*DOORBELL, "replay", str(video), "--data-dir", str(owner[0]), "--json", "--bell-at", "30"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    [damaged] = summary["damaged"]
    assert damaged["start_s"] == pytest.approx(bad[0], abs=1e-3)
    assert bad[-1] < damaged["end_s"] < bad[-1] + 2.0
    assert result.stderr == (
        f"doorbell: warning: {video}: damaged video from {damaged['start_s']:.1f} s "
        f"to {damaged['end_s']:.1f} s skipped\n"
    )
    assert summary["frames"] == decodable > 380
    [bell] = [c for c in summary["clips"] if c["trigger"] == "bell"]
    assert bell["end_s"] == pytest.approx(39.9)
    assert len(clip_times(identity, bell)) == round((bell["end_s"] - bell["start_s"]) * 10) + 1


# -- what is not a video ---------------------------------------------------------------------


def test_a_text_file_is_refused_in_one_line(owner, tmp_path):
    """FFmpeg alone "decodes" a text file as ANSI art; replay refuses it, naming it."""
    notes = tmp_path / "notes.txt"
    notes.write_text("Shopping list\n- milk\n- eggs\n" * 20)
    result = subprocess.run(
        [*DOORBELL, "replay", str(notes), "--data-dir", str(owner[0])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"doorbell: {notes}: not a video file "
        "(doorbell reads MP4, MOV, MKV, WebM, AVI, MPEG-TS, MPEG-PS, FLV or WMV)\n"
    )


# -- odd picture sizes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "recorded"), [((641, 481), (640, 480)), ((1279, 719), (1278, 718))]
)
def test_an_odd_size_is_recorded_cropped_to_even(owner, tmp_path, size, recorded):
    """The H.264 encoder takes no odd side: the masked picture loses its last row and
    column, and the clip, its thumbnail and its mask are all at the recorded size."""
    _, identity = owner
    camera = open_camera("synthetic", width=size[0], height=size[1], fps=10, duration=3.0)
    frames = [frame.image for frame in camera.frames()]
    video = scenes.write_video(tmp_path / "odd.mp4", frames, 10)
    config = tmp_path / "doorbell.toml"
    config.write_text(f"[privacy]\nmasks = {json.dumps(TOP_BAND)}\n")
    summary = replay(owner[0], video, "--bell-at", "1", "--config", str(config))
    assert summary["size"] == list(size) and summary["recorded_size"] == list(recorded)
    [bell] = summary["clips"]
    with av.open(io.BytesIO(decrypt_with_age(identity, bell["file"]))) as container:
        pictures = [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]
    assert len(pictures) == 30
    assert {p.shape for p in pictures} == {recorded[::-1]}
    band = pictures[-1][: recorded[1] // 4 - 8]
    assert band.max() <= 20
    thumb = decrypt_with_age(identity, bell["file"].replace(".mp4.age", ".jpg.age"))
    image = cv2.imdecode(np.frombuffer(thumb, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image.shape == recorded[::-1]


def test_a_bell_past_the_end_is_said_not_pressed(owner, tmp_path):
    """`--bell-at` past the video's last frame: the press cannot happen, and replay says
    so (a warning naming the time, and the summary's bells_not_pressed), never silently."""
    scene = scenes.porch(duration=4.0)
    video = scenes.write_video(tmp_path / "short.mp4", scene.frames, scene.fps)
    argv = [*DOORBELL, "replay", str(video), "--data-dir", str(owner[0]), "--json"]
    result = subprocess.run(
        [*argv, "--bell-at", "1", "--bell-at", "700"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["bells_not_pressed"] == [700.0]
    assert [e["kind"] for e in summary["events"]].count("bell") == 1
    last = (summary["frames"] - 1) / summary["fps"]
    assert result.stderr == (
        f"doorbell: warning: {video}: --bell-at 700 s is after the video's last frame "
        f"({last:.1f} s): not pressed\n"
    )
