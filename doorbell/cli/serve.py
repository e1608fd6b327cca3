"""``doorbell run`` and ``doorbell demo``: the service (camera, clips, GPIO, web
interface) until SIGINT or SIGTERM. The only commands that import ``service``, and
only when they run. Also ``doorbell setup-code``: the one-time code that pairs the
running service's first owner."""

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from doorbell.cli.common import add_data_dir_option, config_path, data_dir
from doorbell.errors import DoorbellError, UsageError

if TYPE_CHECKING:
    from doorbell.config import Config
    from doorbell.mqtt_settings import MqttSettings
    from doorbell.service import Service


def _announce(service: "Service", extra: Sequence[str] = (), after_url: str = "") -> None:
    lines = [f"doorbell: open {service.url}{after_url}"]
    if service.tls_fingerprint:
        lines.append(f"doorbell: TLS certificate SHA-256 {service.tls_fingerprint}")
    lines.extend(extra)
    print("\n".join(lines), flush=True)


def _serve(service: "Service", extra: Sequence[str] = (), after_url: str = "") -> int:
    """Run ``service`` until SIGINT or SIGTERM; the clip being recorded is finished.
    Once it is up, print where to open it (its URL, then ``after_url``: a path and
    what to do there), its TLS fingerprint and the ``extra`` lines."""
    import asyncio
    import signal

    from doorbell import collector, logs

    collector.lean_memory()  # before any thread: no transparent huge pages, one malloc arena
    logs.configure()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(running: "Service") -> None:
            collector.settle()
            _announce(running, extra, after_url)

        await service.run(stop, ready=ready)

    asyncio.run(main())
    print("doorbell: stopped", flush=True)
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


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the service on 127.0.0.1:``--port`` with mock pins, a synthetic camera (or
    ``--source`` in a loop) and a data dir of its own (``--data-dir``, else a new
    temporary one, removed when the demo stops). No owner is made here: while the data
    dir has none, the demo prints its setup code and the page to type it in
    (``/setup``), where the browser makes the owner's identity. Returns 0 on SIGINT or
    SIGTERM.

    Raises UsageError if ``--source`` names a local file that does not exist or is not
    video (CameraError's words), ConfigError for a bad ``--config`` file; nothing is
    made in the data dir before both are checked.
    """
    import tempfile

    from doorbell.camera import CameraError
    from doorbell.config import Config, load_config

    local = args.source and not args.source.isdigit() and "://" not in args.source
    if local and not os.path.isfile(args.source):
        raise UsageError(f"{args.source}: no such video file")
    if local:
        from doorbell.codec import VideoFile

        try:
            VideoFile(args.source).close()
        except CameraError as err:
            raise UsageError(str(err)) from None
    base = load_config(args.config) if args.config else Config()
    if args.config and (ignored := demo_ignores(base)):
        print(f"doorbell: demo: not taken from {args.config}: {ignored}", file=sys.stderr)
    if args.data_dir is None:  # a folder of its own, removed when the demo stops
        with tempfile.TemporaryDirectory(prefix="doorbell-demo-") as data_dir:
            return _demo(args, base, data_dir, "removed when the demo stops; --data-dir D keeps it")
    return _demo(args, base, args.data_dir, "kept")


def demo_config(
    base: "Config", data_dir: str, port: int, source: str | None, mqtt: "MqttSettings"
) -> "Config":
    """The demo's config: ``base`` (the built-in defaults, or ``--config``'s file) for all
    but what :func:`demo_ignores` names: the demo's own camera (synthetic 960x540 at 15
    fps, or ``source`` in a loop; the file's rotation and mirrors kept), ``data_dir``
    with no free-space floor, 127.0.0.1:``port`` over HTTP, ``mqtt``, and no notifier of
    the file's (only ``--notify``'s URLs)."""
    import dataclasses

    from doorbell.config import CameraSettings, NotifySettings

    turn = {k: getattr(base.camera, k) for k in ("rotation", "hflip", "vflip")}
    camera = (
        CameraSettings(backend="opencv", source=source, loop=True, **turn)
        if source
        else CameraSettings(backend="synthetic", width=960, height=540, fps=15.0, **turn)
    )
    return dataclasses.replace(
        base,
        # A demo on a laptop: no free-space floor (a full disk is still handled).
        storage=dataclasses.replace(base.storage, data_dir=str(data_dir), min_free_mb=0),
        camera=camera,
        web=dataclasses.replace(
            base.web, listen=f"127.0.0.1:{port}", tls="off", allow_plain_http=False
        ),
        mqtt=mqtt,
        notify=NotifySettings(),
    )


def demo_ignores(base: "Config") -> str:
    """What ``doorbell demo`` does not take from a config ``base`` that sets it (the demo
    has its own), as one line: ``"[camera] backend, width; [web] listen; [mqtt]"``, or ""
    when the file sets none of it."""
    from doorbell.config import CameraSettings, Config

    default = Config()
    turn = ("rotation", "hflip", "vflip")
    camera = [
        key
        for key in CameraSettings.__dataclass_fields__
        if key not in turn and getattr(base.camera, key) != getattr(default.camera, key)
    ]
    parts = [f"[camera] {', '.join(camera)}"] if camera else []
    storage = [
        k
        for k in ("data_dir", "min_free_mb")
        if getattr(base.storage, k) != getattr(default.storage, k)
    ]
    parts += [f"[storage] {', '.join(storage)}"] if storage else []
    web = [
        k
        for k in ("listen", "tls", "allow_plain_http")
        if getattr(base.web, k) != getattr(default.web, k)
    ]
    parts += [f"[web] {', '.join(web)}"] if web else []
    parts += [f"[{name}]" for name in ("mqtt", "notify") if getattr(base, name).enabled]
    return "; ".join(parts)


def demo_mqtt(where: str | None) -> "MqttSettings":
    """``doorbell demo --mqtt HOST:PORT``: MQTT on, to that broker, no account, device id
    "demo"; None: off. Raises UsageError for anything but host:port."""
    from doorbell.config_schema import split_listen
    from doorbell.mqtt_settings import MqttSettings, settings_problem

    if where is None:
        return MqttSettings()
    try:
        host, port = split_listen(where)
    except ValueError:
        raise UsageError(f"--mqtt {where}: expected HOST:PORT, such as 127.0.0.1:1883") from None
    settings = MqttSettings(enabled=True, host=host.strip("[]"), port=port, device_id="demo")
    if problem := settings_problem(settings):
        raise UsageError(f"--mqtt {where}: {problem}")
    return settings


def demo_notify(urls: Sequence[str]) -> list[str]:
    """``doorbell demo --notify URL`` (any number): the URLs, checked as ``config check``
    checks a URL file. Raises UsageError naming the URL's place and service, never its
    token."""
    if not urls:
        return []
    from doorbell.notify_apprise import url_problems

    if problems := url_problems(list(urls)):
        raise UsageError("--notify: " + "; ".join(problems))
    return list(urls)


def _demo(args: argparse.Namespace, base: "Config", data_dir: str, fate: str) -> int:
    from doorbell.owners import Owners, SetupCode
    from doorbell.service import Service
    from doorbell.store import Keyring

    after_url = ""
    if not Owners(Keyring.in_data_dir(data_dir)).has_owner():
        after_url = f"setup and type the setup code {SetupCode(data_dir).ensure()}"
    config = demo_config(base, data_dir, args.port, args.source, demo_mqtt(args.mqtt))
    extra = [
        f"doorbell: data dir: {data_dir} ({fate})",
        "doorbell: press Ctrl-C to stop",
    ]
    urls = demo_notify(args.notify)
    return _serve(Service(config, demo=True, notify_urls=urls), extra, after_url)


SETUP_CODE_USE = (
    "open the doorbell's page and type this code to pair an owner (the first, or one who "
    "lost every browser and key); it works once"
)


def _data_dir_refused(folder: str) -> DoorbellError:
    import getpass

    from doorbell.cli.keys import this_command

    return DoorbellError(
        f"{folder}: cannot read and write the data dir as user {getpass.getuser()}: run "
        f"'sudo -u doorbell {this_command()} setup-code' (or with sudo) on the doorbell"
    )


def cmd_setup_code(args: argparse.Namespace) -> int:
    """Print the setup code of the data dir (made first if there is none; ``--new``
    replaces it) and what to do with it. Returns 0. The code goes to stdout only,
    never to a log.

    Run as root, the code's file is given to the data dir's owner (the service's
    user), so the service can still read it (:func:`~doorbell.cli.keys.give_back`).

    Raises DoorbellError (exit 1, one line, no traceback) if the data dir is not there,
    or cannot be read or written by this user, with a hint to use ``sudo -u doorbell``
    or sudo.
    """
    from doorbell.cli.keys import give_back
    from doorbell.owners.codes import SETUP_CODE_FILE, SetupCode

    folder = data_dir(args)
    if not os.path.isdir(folder):  # never make one: the service makes it, as its user
        raise DoorbellError(
            f"{folder}: no data dir there; the service makes it when it first runs. If its "
            "data is elsewhere, say where: --data-dir D"
        )
    setup = SetupCode(folder)
    try:
        if os.path.exists(setup.path) and not os.access(setup.path, os.R_OK | os.W_OK):
            raise _data_dir_refused(folder)  # never replace a code the service still holds
        code = setup.new() if args.new else setup.ensure()
        give_back(folder, [SETUP_CODE_FILE])  # run as root: the service must still read it
    except PermissionError:
        raise _data_dir_refused(folder) from None
    print(f"setup code: {code}\n{SETUP_CODE_USE}")
    return 0


def register_setup_code(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``setup-code`` to the top-level ``commands``."""
    setup = commands.add_parser(
        "setup-code", help="print the one-time code that pairs an owner in the browser"
    )
    add_data_dir_option(setup)
    setup.add_argument(
        "--new",
        action="store_true",
        help="replace the code with a new one (the old one stops working)",
    )
    setup.set_defaults(func=cmd_setup_code)


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
        "--config",
        metavar="FILE",
        help="use this doorbell.toml (motion, zones, masks, trigger, rotation, web, gpio, "
        "storage); the demo keeps its own camera, data dir, address and connections, and "
        "names what it did not take",
    )
    demo.add_argument(
        "--notify",
        metavar="URL",
        action="append",
        default=[],
        help="send ring notices to this Apprise URL, e.g. ntfy://HOST:PORT/TOPIC (see README)",
    )
    demo.add_argument(
        "--mqtt",
        metavar="HOST:PORT",
        help="publish to this MQTT broker for Home Assistant (no account; see README)",
    )
    demo.set_defaults(func=cmd_demo)
