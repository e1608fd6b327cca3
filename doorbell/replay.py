"""``doorbell replay``: the real pipeline over a video file, as if it were the camera.

This is how an owner tunes zones and thresholds on their own footage, and how
the tests run the whole path on real video: frames → mask → motion → trigger
→ H.264 → fragmented MP4 → age files in the data dir's store.

Every time in the summary (events, clips, pre-roll, damaged stretches) is
the file's own presentation time (:class:`~doorbell.camera.file.FileCamera`),
seconds after its first frame; ``--bell-at`` times are the same.
"""

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from doorbell.camera.file import Damage, FileCamera
from doorbell.pipeline import Pipeline, PipelineSettings
from doorbell.store import VIDEO, ClipStore

# (frame time, frame number, the video's duration or None), every 25 frames
Progress = Callable[[float, int, float | None], None]


def replay(
    video: str,
    data_dir: str | Path,
    settings: PipelineSettings,
    bell_at: Sequence[float] = (),
    *,
    realtime: bool = False,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict:
    """Run ``video`` through the pipeline into the store of ``data_dir``; the summary.

    ``warn`` hears each damaged stretch of the video in words as it is skipped (else
    it is logged), and each ``bell_at`` past the video's last frame (in the summary's
    ``bells_not_pressed`` too). Raises CameraError naming the video if it is not one, PipelineError
    if the pipeline cannot take it."""

    def damaged(damage: Damage) -> None:
        if warn is not None:
            warn(damage.describe(video))

    camera = FileCamera(video, realtime=realtime, on_damage=damaged if warn else None)
    try:
        store = ClipStore.open(data_dir)
    except BaseException:
        camera.close()
        raise
    origin = time.time()
    try:
        pipeline = Pipeline(
            store,
            settings,
            camera.width,
            camera.height,
            camera.fps,
            wall_time=lambda t: origin + t,
            colour=camera.colour,
        )
    except BaseException:
        camera.close()
        store.close()
        raise
    presses = sorted(bell_at)
    try:
        try:
            for frame in camera.frames():
                while presses and presses[0] <= frame.at + 1e-9:
                    pipeline.press_bell(presses.pop(0))
                pipeline.process(frame)
                if progress is not None and frame.index % 25 == 0:
                    progress(frame.at, frame.index, camera.duration)
            for at in presses:  # never silently: a press past the end did not happen
                if warn is not None:
                    warn(
                        f"{video}: --bell-at {at:g} s is after the video's last frame "
                        f"({pipeline.last_at:.1f} s): not pressed"
                    )
        finally:  # Ctrl-C too: the clip being recorded is finished, not left as .part
            recorded = pipeline.finish()
    finally:
        camera.close()
        store.close()
    return {
        "fps": camera.fps,
        "frames": pipeline.frames,
        "size": [camera.width, camera.height],
        "recorded_size": list(pipeline.size),
        "bells_not_pressed": presses,
        "damaged": [
            {"start_s": round(d.start, 3), "end_s": round(d.end, 3)} for d in camera.damaged
        ],
        "events": [
            {
                "kind": e.kind,
                "start_s": round(e.start, 3),
                "end_s": round(e.end if e.end is not None else e.start, 3),
            }
            for e in pipeline.events
        ],
        "clips": [
            {
                "id": r.clip.id,
                "file": str(store.path(r.clip.id, VIDEO)),
                "trigger": r.clip.trigger,
                "start_s": round(r.start_at, 3),
                "end_s": round(r.end_at, 3),
                "preroll_s": round(r.trigger_at - r.start_at, 3),
            }
            for r in recorded
        ],
    }


def terminal_progress() -> Progress:
    """A one-line progress bar on stderr (a count of seconds if the duration is unknown)."""

    def show(at: float, index: int, duration: float | None) -> None:
        if duration:
            done = min(1.0, at / duration)
            bar = "#" * int(done * 30)
            sys.stderr.write(f"\r[{bar:<30}] {at:7.1f} s of {duration:.1f} s")
        else:
            sys.stderr.write(f"\r{at:7.1f} s, {index} frames")
        sys.stderr.flush()

    return show


def describe(summary: dict) -> str:
    lines = [f"{summary['frames']} frames at {summary['fps']:g} fps"]
    if summary["size"] != summary["recorded_size"]:
        size, recorded = (f"{w}x{h}" for w, h in (summary["size"], summary["recorded_size"]))
        lines.append(f"  recorded at {recorded} (the video is {size}; H.264 takes even sides)")
    for damage in summary["damaged"]:
        lines.append(f"  damaged {damage['start_s']:8.2f} s - {damage['end_s']:8.2f} s, skipped")
    for event in summary["events"]:
        lines.append(f"  {event['kind']:<6} {event['start_s']:8.2f} s - {event['end_s']:8.2f} s")
    lines.append(f"{len(summary['clips'])} clip(s), encrypted:")
    for clip in summary["clips"]:
        lines.append(
            f"  {clip['id']}  {clip['trigger']:<6} {clip['start_s']:8.2f} s - {clip['end_s']:8.2f} s"
            f"  (pre-roll {clip['preroll_s']:.2f} s)  {clip['file']}"
        )
    return "\n".join(lines)
