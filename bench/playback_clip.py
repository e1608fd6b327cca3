"""The clip the playback bench serves: real footage recorded by doorbell's own path.

    made = record(folder, seconds=120.0)
    made.video, made.index          # <id>.mp4.age, <id>.idx.age (as the store wrote them)
    made.plain                      # the same MP4 decrypted (the plaintext baseline)
    made.thumbnails                 # 24 (<n>.jpg.age, <n>.jpg) pairs of real frames

porch-visitors.mp4 (768x432, 10 fps) is read by the file camera
(:class:`~doorbell.camera.file.FileCamera`, looped), each frame scaled to the
device's default picture (1280x720) and timed at its default rate (15 fps: the
footage runs 1.5x fast, every frame a real one), encoded by the pipeline's H.264
encoder (a keyframe a second), then recorded by :class:`~doorbell.recorder.Recorder`
into a :class:`~doorbell.store.ClipStore`: fragmented MP4 into the vault's writer,
encrypted to a new identity, the thumbnail and the fragment index beside it.
The thumbnails are JPEGs of 24 frames spread over the clip, made as the pipeline
makes them (quality 80, the recorded picture) and encrypted as the store
encrypts a thumbnail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from footage import FOOTAGE

from doorbell import vault

SOURCE = "porch-visitors.mp4"
THUMBNAILS = 24


@dataclass
class Made:
    """What :func:`record` made, all in its folder."""

    identity: vault.X25519Identity
    clip_id: str
    video: Path  # <id>.mp4.age, the ciphertext the device serves
    index: Path  # <id>.idx.age
    plain: Path  # the same MP4 in plaintext
    seconds: float  # the clip's duration as its index row says (the player page is given it)
    thumbnails: list[tuple[Path, Path]] = field(default_factory=list)  # (.jpg.age, .jpg)
    index_from: str = "the store"  # or "FragmentIndex" if the store wrote none


def record(folder: Path, seconds: float) -> Made:
    """Record ``seconds`` of the footage as the device would (see the module)."""
    import cv2

    from doorbell.camera import EncodedPacket
    from doorbell.camera.file import FileCamera
    from doorbell.codec import H264Encoder
    from doorbell.config import CameraSettings, PipelineSettings
    from doorbell.recorder import Recorder
    from doorbell.store import INDEX, VIDEO, ClipStore
    from doorbell.trigger import Start

    camera_settings, pipeline = CameraSettings(), PipelineSettings()
    size, fps = (camera_settings.width, camera_settings.height), camera_settings.fps
    quality = [cv2.IMWRITE_JPEG_QUALITY, pipeline.thumbnail_quality]
    identity = vault.X25519Identity.generate()
    store = ClipStore(folder / "data", lambda: [identity.recipient])
    encoder = H264Encoder(*size, fps, keyframe_interval=pipeline.keyframe_interval)
    camera = FileCamera(str(FOOTAGE / SOURCE), loop=True)
    frames = round(seconds * fps)
    every = frames // THUMBNAILS
    jpegs: list[bytes] = []
    recorder = Recorder(
        store,
        encoder.stream_info(),
        pre_roll=pipeline.policy.pre_roll,
        wall_time=lambda t: 1.8e9 + t,
        thumbnail=lambda: jpegs[0],
    )
    started = False
    last = 0.0
    for n, frame in enumerate(camera.frames()):
        if n == frames:
            break
        last = n / fps
        picture = cv2.resize(frame.image, size, interpolation=cv2.INTER_LINEAR)
        if n % every == 0 and len(jpegs) < THUMBNAILS:
            jpegs.append(cv2.imencode(".jpg", picture, quality)[1].tobytes())
        packets = encoder.encode(picture, last)
        recorder.add(packets)
        if not started and packets:
            recorder.apply([Start(at=last, since=last, trigger="bell")])
            started = True
    camera.close()
    recorder.add(EncodedPacket(p.at, p.keyframe, p.data) for p in encoder.flush())
    done = recorder.stop(last)
    store.close()
    if done is None:
        raise SystemExit("the recorder made no clip")
    clip_id = done.clip.id
    video, index = store.path(clip_id, VIDEO), store.path(clip_id, INDEX)
    plain = folder / "plain.mp4"
    with vault.open_file(video, [identity]) as source, open(plain, "wb") as out:
        while block := source.read(1 << 20):
            out.write(block)
    made = Made(identity, clip_id, video, index, plain, done.clip.duration or 0.0)
    if not index.exists():
        _index_by_hand(plain, index, identity)
        made.index_from = "FragmentIndex"
    for n, jpeg in enumerate(jpegs):
        sealed, bare = folder / f"{n}.jpg.age", folder / f"{n}.jpg"
        with vault.create(sealed, [identity.recipient]) as out:
            out.write(jpeg)
        bare.write_bytes(jpeg)
        made.thumbnails.append((sealed, bare))
    return made


def _index_by_hand(plain: Path, index: Path, identity: vault.X25519Identity) -> None:
    """The fragment index the recorder writes, built with its own module, for a store
    that does not write it yet."""
    from doorbell.store.fragment_index import KEPT_BOXES, FragmentIndex
    from doorbell.store.fragments import FragmentScanner

    built, scanner = FragmentIndex(), FragmentScanner(keep=KEPT_BOXES)
    data = plain.read_bytes()
    scanner.feed(data)
    for box in scanner.take_boxes():
        built.add(*box)
    encoded = built.encode(len(data))
    if encoded is None:
        raise SystemExit(f"{plain}: no moov box, so no fragment index")
    with vault.create(index, [identity.recipient]) as out:
        out.write(encoded)
