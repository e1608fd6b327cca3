"""``doorbell replay VIDEO``: the pipeline over a video file, as if it were the
camera. The one command here that loads the video stack (PyAV, OpenCV), and only
when it runs."""

import argparse
import sys

from doorbell.cli.common import add_data_dir_option, data_dir


def cmd_replay(args: argparse.Namespace) -> int:
    """Run motion, trigger and recording over ``args.video`` into the data dir, pressing
    the bell at each ``--bell-at`` time (seconds of the video's own time), and print a
    summary (one JSON object with ``--json``). Shows progress on a terminal; each damaged
    stretch of the video is a warning line on stderr. Returns 0.

    Raises ConfigError for a bad ``--config`` file; CameraError naming the video if it is
    missing, unreadable or not a video; PipelineError if its pictures cannot be recorded.
    """
    import json

    from doorbell import config
    from doorbell.replay import describe, replay, terminal_progress

    settings = config.load(args.config)
    progress = terminal_progress() if not args.json and sys.stderr.isatty() else None

    def warn(message: str) -> None:
        if progress is not None:
            sys.stderr.write("\n")
        print(f"doorbell: warning: {message}", file=sys.stderr)

    summary = replay(
        args.video,
        data_dir(args),
        settings,
        args.bell_at,
        realtime=args.realtime,
        progress=progress,
        warn=warn,
    )
    if progress is not None:
        sys.stderr.write("\n")
    print(json.dumps(summary) if args.json else describe(summary))
    return 0


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``replay`` to the top-level ``commands``."""
    rep = commands.add_parser("replay", help="run the pipeline over a video file, as the camera")
    rep.add_argument("video", metavar="VIDEO")
    add_data_dir_option(rep)
    rep.add_argument(
        "--config", metavar="F", help="a doorbell.toml (motion, zones, masks, trigger)"
    )
    rep.add_argument(
        "--bell-at",
        type=float,
        action="append",
        default=[],
        metavar="SECONDS",
        help="press the bell at this video time (repeatable)",
    )
    rep.add_argument("--realtime", action="store_true", help="play at the video's own speed")
    rep.add_argument("--json", action="store_true", help="one JSON object on stdout")
    rep.set_defaults(func=cmd_replay)
