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

from doorbell.store import Keyring
from tests import scenes
from tests.conftest import PASSPHRASE, footage

TOP_BAND = [[[0.0, 0.0], [1.0, 0.0], [1.0, 0.25], [0.0, 0.25]]]


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
