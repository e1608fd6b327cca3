"""The recorder: the pre-roll ring buffer (whole GOPs, always from a keyframe), a clip's
times, and what a crash loses."""

import itertools

import pytest

from doorbell.camera import EncodedPacket
from doorbell.recorder import PacketRing


def stream(seconds: float, fps: int = 10, gop: int = 10):
    for i in range(int(seconds * fps)):
        yield EncodedPacket(i / fps, i % gop == 0, bytes([i % 256]))


def test_the_ring_keeps_its_seconds_in_whole_gops():
    ring = PacketRing(5.0)
    for packet in stream(30.0):
        ring.add(packet)
    held = ring.since(-1.0)
    assert held[0].keyframe
    assert held[0].at <= 29.9 - 5.0  # at least the pre-roll
    assert held[0].at > 29.9 - 5.0 - 1.0  # and at most one GOP more


def test_since_starts_at_the_keyframe_at_or_before():
    ring = PacketRing(10.0)
    for packet in stream(20.0):
        ring.add(packet)
    assert ring.since(15.5)[0].at == 15.0
    assert ring.since(15.0)[0].at == 15.0
    assert ring.since(3.0)[0].at == ring.since(-100)[0].at  # older than held: the oldest keyframe


def test_an_empty_ring_or_one_without_keyframes_gives_nothing():
    ring = PacketRing(5.0)
    assert ring.since(0.0) == []
    ring.add(EncodedPacket(0.0, False, b"x"))
    assert ring.since(0.0) == []


# -- a clip's times, and what a crash loses ------------------------------------------------


def test_a_clips_end_is_its_start_plus_its_own_length_whatever_the_wall_clock_did(data_dir):
    """The wall clock steps an hour forward mid-clip: the clip's end is its start plus the
    camera-time length of its video, not a second reading of the stepped mapping."""
    from doorbell.clock import ClockState
    from doorbell.recorder import Recorder
    from doorbell.store import ClipStore
    from doorbell.trigger import Start
    from tests.test_disk_full import NoiseCamera

    camera = NoiseCamera()
    wall = {"origin": 1_800_000_000.0}  # camera time 0 on the wall clock
    store = ClipStore.open(
        data_dir,
        clock=lambda: wall["origin"] + camera.at,
        clock_state=lambda: ClockState(synchronised=True, boot_id=None, boottime=0.0),
    )
    recorder = Recorder(store, camera.info, pre_roll=1.0, wall_time=lambda t: wall["origin"] + t)
    recorder.add(camera.packets(2.0))
    recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="bell")])
    recorder.add(camera.packets(1.5))
    wall["origin"] += 3600.0  # NTP steps the clock
    recorder.add(camera.packets(2.0))
    done = recorder.stop(camera.at)
    assert done is not None
    assert done.clip.start == 1_800_000_000.0 + done.start_at  # as it was when it began
    assert done.clip.end - done.clip.start == pytest.approx(done.end_at - done.start_at)
    assert (done.start_at, done.end_at) == (0.0, camera.at)  # the keyframe before the pre-roll
    assert store.get(done.clip.id).end == done.clip.end
    store.close()


def test_a_killed_recorder_loses_at_most_its_unsealed_chunk_and_the_frame_in_the_muxer(
    data_dir, identities
):
    """Law 5 for a process crash (SIGKILL): what survives is the `.part` as the OS has it
    (every sealed chunk was written at once; nothing else is). Read at 12 moments of a
    clip, recovered and cut to whole fragments, it holds every frame but those whose
    fragment reaches into the last 64 KiB the muxer wrote, and the one frame the muxer
    still holds (it writes a frame's fragment when the next frame comes)."""
    import io

    from doorbell import vault
    from doorbell.recorder import Recorder
    from doorbell.store import ClipStore
    from doorbell.store.fragments import Trimmed, trim
    from doorbell.trigger import Start
    from doorbell.vault.stream import CHUNK_SIZE
    from tests.test_disk_full import NoiseCamera, strict_frames

    camera = NoiseCamera()
    store = ClipStore.open(data_dir)
    recorder = Recorder(store, camera.info, pre_roll=1.0, wall_time=lambda t: 1.8e9 + t)
    recorder.add(camera.packets(1.0))
    recorder.apply([Start(at=camera.at, since=camera.at, trigger="bell")])
    [row] = store.list(states=("recording",))
    video = recorder._open.recording.video  # type: ignore[union-attr]  # what the muxer wrote
    given = len(recorder.ring.since(camera.at))  # frames muxed into the clip so far
    ends = []  # the muxer's output size after each frame: where the fragment before it ends
    worst = 0
    for step in range(12):
        for packet in camera.packets(0.4 + step * 0.07):  # kills land all over the chunks
            recorder.add([packet])
            given += 1
            ends.append(video.tell())
        on_disk = store.path(row.id, ".mp4.age.part").read_bytes()  # as SIGKILL leaves it
        recovered, kept = vault.Recovery(), Trimmed()
        stream = io.BytesIO(on_disk)
        mp4 = b"".join(trim(vault.recover(stream, identities, recovered), kept))
        at_risk = sum(1 for end in set(ends) if end > video.tell() - CHUNK_SIZE)
        lost = given - kept.fragments
        assert 1 <= lost <= at_risk + 1, (step, lost, at_risk)
        biggest_fragment = max(b - a for a, b in itertools.pairwise(ends))
        assert video.tell() - kept.kept <= CHUNK_SIZE + biggest_fragment
        assert strict_frames(mp4) == kept.fragments  # it plays to its end
        worst = max(worst, lost)
    assert worst <= 7  # ~15 KB frames: a 64 KiB chunk holds 4-5 of them, plus 1-2
    recorder.stop(camera.at)
    store.close()


def test_a_clip_stopped_before_its_first_keyframe_is_no_clip(data_dir):
    """The camera had sent no keyframe yet when the bell rang, nor until the clip ended:
    nothing in it could play, so nothing is kept or listed (and no "finished" is said)."""
    from doorbell.recorder import Recorder
    from doorbell.store import ClipStore
    from doorbell.trigger import Start
    from tests.test_disk_full import NoiseCamera

    camera = NoiseCamera()
    store = ClipStore.open(data_dir)
    events: list = []
    recorder = Recorder(
        store,
        camera.info,
        pre_roll=1.0,
        wall_time=lambda t: 1.8e9 + t,
        on_clip=lambda kind, detail: events.append(kind),
    )
    recorder.add(p for p in camera.packets(0.5) if not p.keyframe)
    recorder.apply([Start(at=camera.at, since=camera.at - 1.0, trigger="bell")])
    recorder.add(p for p in camera.packets(0.3) if not p.keyframe)
    assert recorder.stop(camera.at) is None and events == ["started"]
    assert store.list(states=("recording", "partial", "complete")) == []
    assert list((data_dir / "clips").iterdir()) == []
    store.close()
