"""The ``doorbell`` command: the owner's tools.

    doorbell keys init             make the owner identity (asks for a passphrase)
    doorbell keys export           print the identity, for ``age -d -i`` elsewhere
    doorbell keys add-recipient    encrypt new clips to one more public key
    doorbell encrypt / decrypt     the vault as a tool, with age's flags
    doorbell replay VIDEO          the pipeline over a video file, as if it were the camera
    doorbell run                   the service: camera, clips, GPIO, web interface
    doorbell demo                  the same on a fresh data dir, a synthetic camera, mock pins
    doorbell config check [FILE]   every problem in a config file, one a line
    doorbell config default        print the annotated default config

Exit status: 0 success; 1 a key, crypto or format problem, one line on stderr
naming the file and the failure; 2 a usage problem. Subcommands import what
they need when they run: ``doorbell decrypt`` never loads the video stack.
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import BinaryIO

from doorbell.errors import DoorbellError, UsageError

DEFAULT_DATA_DIR = "/var/lib/doorbell"
_READ_BLOCK = 1 << 20


def _data_dir(args: argparse.Namespace) -> str:
    return args.data_dir or os.environ.get("DOORBELL_DATA_DIR") or DEFAULT_DATA_DIR


def _read_passphrase_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            line = file.readline().rstrip("\r\n")
    except OSError as err:
        raise UsageError(f"{path}: cannot read the passphrase file ({err.strerror})") from None
    if not line:
        raise UsageError(f"{path}: the passphrase file is empty")
    return line


def _ask(prompt: str) -> str:
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the passphrase; give --passphrase-file FILE")
    import getpass

    return getpass.getpass(prompt)


def _passphrase(args: argparse.Namespace, confirm: bool = False) -> str:
    if args.passphrase_file:
        return _read_passphrase_file(args.passphrase_file)
    first = _ask("Passphrase: ")
    if confirm and _ask("Same passphrase again: ") != first:
        raise UsageError("the two passphrases differ; nothing was changed")
    return first


# -- keys -----------------------------------------------------------------


def cmd_keys_init(args: argparse.Namespace) -> int:
    from doorbell.store.keyring import Keyring, check_passphrase, measure_work_factor

    keyring = Keyring.in_data_dir(_data_dir(args))
    if keyring.has_identity():
        raise UsageError(f"{keyring.identity_file} exists already; the owner identity is kept")
    passphrase = _passphrase(args, confirm=True)
    check_passphrase(passphrase)
    if len(passphrase) < 12:
        print("note: a passphrase of 12 or more characters (or five words) is much harder to guess")
    factor = args.work_factor if args.work_factor is not None else measure_work_factor()
    identity = keyring.init(passphrase, factor)
    mib = 2**factor // 1024
    print(
        f"""Owner identity created.
  recipient (public key, safe to share):  {identity.recipient}
  identity, encrypted under your passphrase:  {keyring.identity_file}
  passphrase work factor: 2^{factor} ({mib} MiB of memory to unlock)

Back up your identity now: without it and your passphrase no clip can be opened.
  - copy {keyring.identity_file} anywhere (it is useless without the passphrase), or
  - run 'doorbell keys export' and keep the key it prints on paper or in a password manager.
Any clip opens with the stock age tool on any computer:
  age -d -i identity.txt CLIP.mp4.age > clip.mp4"""
    )
    return 0


def cmd_keys_export(args: argparse.Namespace) -> int:
    from doorbell.store.keyring import Keyring

    keyring = Keyring.in_data_dir(_data_dir(args))
    identities = keyring.unlock(_passphrase(args))
    if sys.stdout.isatty():
        print("# This is your secret key. Anyone who has it can open every clip.", file=sys.stderr)
    for identity in identities:
        print(f"# public key: {identity.recipient}\n{identity.secret()}")
    return 0


def cmd_keys_add_recipient(args: argparse.Namespace) -> int:
    from doorbell import vault
    from doorbell.store.keyring import Keyring

    keyring = Keyring.in_data_dir(_data_dir(args))
    recipient = vault.X25519Recipient.parse(args.recipient)
    added = keyring.add_recipient(recipient, args.comment or "added with keys add-recipient")
    count = len(keyring.recipients())
    state = "added" if added else "already a recipient"
    print(f"{recipient}: {state}; new clips are encrypted to {count} recipient(s)")
    return 0


# -- encrypt / decrypt ----------------------------------------------------


def _input(path: str | None) -> BinaryIO:
    if path in (None, "-"):
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as err:
        raise UsageError(f"{path}: cannot open ({err.strerror})") from None


def cmd_encrypt(args: argparse.Namespace) -> int:
    from doorbell import vault

    recipients = [vault.X25519Recipient.parse(r) for r in args.recipient]
    for path in args.recipients_file:
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"{path}: cannot read the recipients file ({err})") from None
        recipients += vault.parse_recipients(text, path)
    if not recipients:
        raise UsageError("encrypt needs at least one -r RECIPIENT or -R FILE")
    if args.output is None and sys.stdout.isatty():
        raise UsageError("refusing to write ciphertext to a terminal; use -o FILE or a pipe")
    source = _input(args.input)
    if args.output:
        try:
            writer = vault.create(args.output, recipients, durable=False)
        except FileExistsError:
            raise UsageError(
                f"{args.output}.part exists: another encryption to {args.output} is running "
                "or was cut off; remove it if not"
            ) from None
    else:
        writer = vault.Writer(vault.StreamSink(sys.stdout.buffer), recipients)
    try:
        while block := source.read(_READ_BLOCK):
            writer.write(block)
    except BaseException:
        writer.discard()
        raise
    writer.close()
    return 0


def _identities(args: argparse.Namespace) -> list:
    from doorbell import vault

    identities: list = []
    for path in args.identity:
        try:
            identities += vault.load_identities(path, lambda: _passphrase(args))
        except OSError as err:
            raise UsageError(f"{path}: cannot read the identity file ({err.strerror})") from None
    return identities


def _copy_range(reader: "object", out: Callable[[bytes], object], offset: int, length: int) -> None:
    reader.seek(offset)  # type: ignore[attr-defined]
    remaining = length
    while remaining > 0:
        block = reader.read(min(_READ_BLOCK, remaining))  # type: ignore[attr-defined]
        if not block:
            break
        out(block)
        remaining -= len(block)


def cmd_decrypt(args: argparse.Namespace) -> int:
    from doorbell import vault

    if not args.identity:
        raise UsageError("decrypt needs -i IDENTITY (an identity file, e.g. from 'keys export')")
    ranged = args.offset is not None or args.length is not None
    if ranged and args.recover:
        raise UsageError(
            "--recover reads the whole file; it cannot be combined with --offset/--length"
        )
    if ranged and args.input in (None, "-"):
        raise UsageError("--offset/--length need a file to seek in, not standard input")
    identities = _identities(args)
    name = args.input if args.input not in (None, "-") else "-"
    source = _input(args.input)
    sink = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    out = vault.StreamSink(sink)
    ok = False
    try:
        if args.recover:
            report = vault.Recovery()
            for chunk in vault.recover(source, identities, report, name):
                out.write(chunk)
            print(f"doorbell: {name}: {report.describe()}", file=sys.stderr)
        elif ranged:
            with vault.Reader(source, identities, name) as reader:
                offset = args.offset or 0
                length = args.length if args.length is not None else max(0, reader.size - offset)
                _copy_range(reader, out.write, offset, length)
        else:
            try:
                _, cipher = vault.open_header(source, identities)
            except vault.VaultError as err:
                err.source = err.source or name
                raise
            for chunk in vault.iter_plaintext(source, cipher, name):
                out.write(chunk)
        out.finish()
        ok = True
    finally:
        if not ok:
            out.abort()
        if args.output:
            sink.close()
            if not ok:
                os.unlink(args.output)
        source.close()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import json

    import cv2

    from doorbell import config
    from doorbell.replay import describe, replay, terminal_progress

    settings = config.load(args.config)
    progress = None
    if not args.json and sys.stderr.isatty():
        capture = cv2.VideoCapture(args.video)
        frames, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        progress = terminal_progress(frames / fps if frames > 0 and fps > 0 else None)
    summary = replay(
        args.video,
        _data_dir(args),
        settings,
        args.bell_at,
        realtime=args.realtime,
        progress=progress,
    )
    if progress is not None:
        sys.stderr.write("\n")
    print(json.dumps(summary) if args.json else describe(summary))
    return 0


def _no_core_dumps() -> None:
    """Law 1: the owner's identity, held in memory while unlocked, must never reach a
    core dump. No core file at all (RLIMIT_CORE 0), and not dumpable (which also keeps
    other processes of the same user from attaching to read its memory)."""
    import ctypes
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):  # not Linux: the rlimit is what there is
        pass


def _serve(service: object) -> int:
    """Run ``service`` until SIGINT or SIGTERM; the clip being recorded is finished."""
    import asyncio
    import logging
    import signal

    _no_core_dumps()
    logging.basicConfig(level=logging.INFO, format="doorbell: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.run(stop, ready=_announce)  # type: ignore[attr-defined]

    asyncio.run(main())
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from doorbell.config import load_config

    path = _config_path(args.file)
    load_config(path)  # ConfigError: one line a problem, each naming the file and the key
    print(f"{path}: ok")
    return 0


def cmd_config_default(args: argparse.Namespace) -> int:
    from doorbell.config import default_text

    sys.stdout.write(default_text())
    return 0


def _announce(service: object) -> None:
    lines = [f"doorbell: open {service.url}"]  # type: ignore[attr-defined]
    if service.tls_fingerprint:  # type: ignore[attr-defined]
        lines.append(f"doorbell: TLS certificate SHA-256 {service.tls_fingerprint}")  # type: ignore[attr-defined]
    extra = getattr(service, "announce", None)
    if extra:
        lines.extend(extra)
    print("\n".join(lines), flush=True)


def _config_path(given: str | None) -> str:
    from doorbell.config import DEFAULT_PATH

    return given or os.environ.get("DOORBELL_CONFIG") or DEFAULT_PATH


def cmd_run(args: argparse.Namespace) -> int:
    from doorbell.config import load_config
    from doorbell.service import Service

    path = _config_path(args.config)
    if args.config is None and not os.path.exists(path):
        print(f"doorbell: no {path}: running with the built-in defaults", file=sys.stderr)
        path = None
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
    import dataclasses
    import secrets
    import tempfile

    from doorbell.config import CameraSettings, Config, StorageSettings, WebSettings
    from doorbell.service import Service
    from doorbell.store import Keyring

    local = args.source and not args.source.isdigit() and "://" not in args.source
    if local and not os.path.isfile(args.source):
        raise UsageError(f"{args.source}: no such video file")
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="doorbell-demo-")
    keyring = Keyring.in_data_dir(data_dir)
    if args.passphrase_file:
        passphrase = _read_passphrase_file(args.passphrase_file)
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
    service = Service(config, demo=True)
    service.announce = [  # type: ignore[attr-defined]
        f"doorbell: demo passphrase: {shown}",
        f"doorbell: data dir: {data_dir}",
        "doorbell: press Ctrl-C to stop",
    ]
    return _serve(service)


# -- the parser -----------------------------------------------------------


def _nonnegative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="doorbell",
        description="A video doorbell that answers to its owner alone.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keys = commands.add_parser("keys", help="the owner's keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            metavar="D",
            help=f"data folder (default: $DOORBELL_DATA_DIR or {DEFAULT_DATA_DIR})",
        )

    init = keys.add_parser("init", help="make the owner identity")
    data_dir(init)
    init.add_argument("--passphrase-file", metavar="F", help="read the passphrase from F")
    init.add_argument(
        "--work-factor",
        type=int,
        choices=range(10, 23),
        metavar="N",
        help="scrypt work factor, 10-22 (default: measured here, about 1 s to unlock)",
    )
    init.set_defaults(func=cmd_keys_init)

    export = keys.add_parser("export", help="print the owner identity for 'age -d -i'")
    data_dir(export)
    export.add_argument("--passphrase-file", metavar="F", help="read the passphrase from F")
    export.set_defaults(func=cmd_keys_export)

    add = keys.add_parser("add-recipient", help="encrypt new clips to another age1… key too")
    data_dir(add)
    add.add_argument("recipient", metavar="age1…")
    add.add_argument("--comment", help="a note kept beside the key in recipients.txt")
    add.set_defaults(func=cmd_keys_add_recipient)

    enc = commands.add_parser("encrypt", help="encrypt to age recipients (like 'age -e')")
    enc.add_argument("-r", "--recipient", action="append", default=[], metavar="RECIPIENT")
    enc.add_argument("-R", "--recipients-file", action="append", default=[], metavar="FILE")
    enc.add_argument("-o", "--output", metavar="OUT")
    enc.add_argument("input", nargs="?", metavar="IN")
    enc.set_defaults(func=cmd_encrypt)

    dec = commands.add_parser("decrypt", help="decrypt an age file (like 'age -d')")
    dec.add_argument(
        "-i",
        "--identity",
        action="append",
        default=[],
        metavar="IDENTITY",
        help="identity file; a passphrase-protected one (keys/identity.age) asks for it",
    )
    dec.add_argument("--passphrase-file", metavar="F", help="passphrase for an encrypted -i file")
    dec.add_argument("--offset", type=_nonnegative, metavar="N", help="start at plaintext byte N")
    dec.add_argument("--length", type=_nonnegative, metavar="M", help="decrypt at most M bytes")
    dec.add_argument(
        "--recover",
        action="store_true",
        help="write the intact part of an unfinished or damaged file and say what was lost",
    )
    dec.add_argument("-o", "--output", metavar="OUT")
    dec.add_argument("input", nargs="?", metavar="IN")
    dec.set_defaults(func=cmd_decrypt)

    rep = commands.add_parser("replay", help="run the pipeline over a video file, as the camera")
    rep.add_argument("video", metavar="VIDEO")
    data_dir(rep)
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

    run = commands.add_parser("run", help="run the doorbell service")
    run.add_argument(
        "--config",
        metavar="FILE",
        help="default: $DOORBELL_CONFIG or /etc/doorbell/doorbell.toml, else built-in defaults",
    )
    run.set_defaults(func=cmd_run)

    conf = commands.add_parser("config", help="the config file").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    check = conf.add_parser("check", help="check a config file; exit 1 and name every problem")
    check.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="default: $DOORBELL_CONFIG or /etc/doorbell/doorbell.toml",
    )
    check.set_defaults(func=cmd_config_check)
    conf.add_parser("default", help="print the annotated default config").set_defaults(
        func=cmd_config_default
    )

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"doorbell: {err}", file=sys.stderr)
        return 2
    except DoorbellError as err:
        for line in str(err).splitlines() or [type(err).__name__]:
            print(f"doorbell: {line}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        print(f"doorbell: {where}{err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("doorbell: interrupted", file=sys.stderr)
        return 130
