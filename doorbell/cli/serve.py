"""``doorbell run`` and ``doorbell demo``: the service (camera, clips, GPIO, web
interface) until SIGINT or SIGTERM. The only commands that import ``service``, and
only when they run."""

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from doorbell.cli.common import config_path, read_passphrase_file
from doorbell.errors import UsageError

if TYPE_CHECKING:
    from doorbell.service import Service


def _announce(service: "Service", extra: Sequence[str] = ()) -> None:
    lines = [f"doorbell: open {service.url}"]
    if service.tls_fingerprint:
        lines.append(f"doorbell: TLS certificate SHA-256 {service.tls_fingerprint}")
    lines.extend(extra)
    print("\n".join(lines), flush=True)


def _serve(service: "Service", extra: Sequence[str] = ()) -> int:
    """Run ``service`` until SIGINT or SIGTERM; the clip being recorded is finished.
    Once it is up, print where to open it, its TLS fingerprint and the ``extra`` lines."""
    import asyncio
    import logging
    import signal

    logging.basicConfig(level=logging.INFO, format="doorbell: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.run(stop, ready=lambda running: _announce(running, extra))

    asyncio.run(main())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the doorbell service with the config file (``--config``, else
    ``$DOORBELL_CONFIG`` or ``/etc/doorbell/doorbell.toml``; if that default is
    missing, the built-in defaults) until SIGINT or SIGTERM. Returns 0.

    Raises ConfigError for a bad config file.
    """
    from doorbell.config import load_config
    from doorbell.service import Service

    path = config_path(args.config)
    if args.config is None and not os.path.exists(path):
        print(f"doorbell: no {path}: running with the built-in defaults", file=sys.stderr)
        return _serve(Service(load_config(None)))
    return _serve(Service(load_config(path)))


DEMO_WORDS = [
    "amber",
    "badge",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "grove",
    "harbor",
    "island",
    "jasper",
    "kettle",
    "lantern",
    "meadow",
    "nectar",
    "orbit",
    "pepper",
    "quartz",
    "ribbon",
    "saddle",
    "timber",
    "umber",
    "velvet",
    "willow",
    "yonder",
]


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the service on 127.0.0.1:``--port`` with mock pins, a synthetic camera (or
    ``--source`` in a loop) and a data dir of its own (``--data-dir``, else a new
    temporary one, removed when the demo stops) whose identity is made with a four-word passphrase it prints, or
    the one in ``--passphrase-file``. Returns 0 on SIGINT or SIGTERM.

    Raises UsageError if ``--source`` names a local file that does not exist.
    """
    import tempfile

    local = args.source and not args.source.isdigit() and "://" not in args.source
    if local and not os.path.isfile(args.source):
        raise UsageError(f"{args.source}: no such video file")
    if args.data_dir is None:  # a folder of its own, removed when the demo stops
        with tempfile.TemporaryDirectory(prefix="doorbell-demo-") as data_dir:
            return _demo(args, data_dir, "removed when the demo stops; --data-dir D keeps it")
    return _demo(args, args.data_dir, "kept")


def _demo(args: argparse.Namespace, data_dir: str, fate: str) -> int:
    import dataclasses
    import secrets

    from doorbell.config import CameraSettings, Config, StorageSettings, WebSettings
    from doorbell.service import Service
    from doorbell.store import Keyring

    keyring = Keyring.in_data_dir(data_dir)
    if args.passphrase_file:
        passphrase = read_passphrase_file(args.passphrase_file)
    else:
        passphrase = "-".join(secrets.choice(DEMO_WORDS) for _ in range(4))
    if not keyring.has_identity():
        keyring.init(passphrase, work_factor=14)  # a demo: quick to unlock
        shown = passphrase if not args.passphrase_file else f"the one in {args.passphrase_file}"
    else:
        shown = "the one this data dir was made with"
    camera = (
        CameraSettings(backend="opencv", source=args.source, loop=True)
        if args.source
        else CameraSettings(backend="synthetic", width=960, height=540, fps=15.0)
    )
    config = dataclasses.replace(
        Config(),
        # A demo on a laptop: no free-space floor (a full disk is still handled).
        storage=StorageSettings(data_dir=str(data_dir), min_free_mb=0),
        camera=camera,
        web=WebSettings(listen=f"127.0.0.1:{args.port}", tls="off"),
    )
    extra = [
        f"doorbell: demo passphrase: {shown}",
        f"doorbell: data dir: {data_dir} ({fate})",
        "doorbell: press Ctrl-C to stop",
    ]
    return _serve(Service(config, demo=True), extra)


def register_run(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``run`` to the top-level ``commands``."""
    run = commands.add_parser("run", help="run the doorbell service")
    run.add_argument(
        "--config",
        metavar="FILE",
        help="default: $DOORBELL_CONFIG or /etc/doorbell/doorbell.toml, else built-in defaults",
    )
    run.set_defaults(func=cmd_run)


def register_demo(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``demo`` to the top-level ``commands`` (apart from ``run``, so that ``doorbell
    --help`` keeps its order)."""
    demo = commands.add_parser(
        "demo", help="the service on a fresh data dir with a synthetic camera and mock pins"
    )
    demo.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    demo.add_argument("--data-dir", metavar="D", help="data folder (default: a new temporary one)")
    demo.add_argument("--source", metavar="VIDEO", help="play this video in a loop as the camera")
    demo.add_argument(
        "--passphrase-file", metavar="F", help="use the passphrase in F (default: a new one)"
    )
    demo.set_defaults(func=cmd_demo)
