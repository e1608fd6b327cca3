"""The ``doorbell`` command: the owner's tools.

    doorbell setup-code            the one-time code that pairs the first owner in the browser
    doorbell keys recovery         a paper recovery key: printed once, its public key kept
    doorbell keys init             an identity file on the owner's own computer
    doorbell keys export           print a legacy identity.age, for ``age -d -i`` elsewhere
    doorbell keys add-recipient    encrypt new clips to one more public key
    doorbell encrypt / decrypt     the vault as a tool, with age's flags
    doorbell replay VIDEO          the pipeline over a video file, as if it were the camera
    doorbell run                   the service: camera, clips, GPIO, web interface
    doorbell demo                  the same on a fresh data dir, a synthetic camera, mock pins
    doorbell config check [FILE]   every problem in a config file, one a line
    doorbell config default        print the annotated default config
    doorbell check-page URL        does the device serve this release's page and scripts?

Exit status: 0 success; 1 a key, crypto or format problem, one line on stderr
naming the file and the failure; 2 a usage problem. Subcommands import what
they need when they run: ``doorbell decrypt`` never loads the video stack.

One module a group of subcommands (``keys``, ``crypt``, ``replay``, ``serve``,
``config``, ``check_page``), each registering its own subparsers; ``common`` holds what they share.
Every command runs with core dumps off (:func:`~doorbell.cli.common.no_core_dumps`):
most of them may hold the owner's identity or passphrase in memory.
"""

import argparse
import os
import sys
from collections.abc import Sequence

from doorbell.cli import check_page, config, crypt, keys, replay, serve
from doorbell.cli.common import no_core_dumps
from doorbell.errors import DoorbellError, UsageError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``doorbell`` parser. Each subcommand sets ``func``, which takes the parsed
    namespace and returns an exit status."""
    parser = argparse.ArgumentParser(
        prog="doorbell",
        description="A video doorbell that answers to its owner alone.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    keys.register(commands)
    crypt.register(commands)
    replay.register(commands)
    serve.register_run(commands)
    config.register(commands)
    serve.register_demo(commands)
    serve.register_setup_code(commands)
    check_page.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``doorbell`` command (``argv`` without the program name; default
    ``sys.argv[1:]``) and return its exit status: 0 done, 1 a key, crypto, format or
    I/O problem (on stderr, one line a problem, naming the file), 2 a usage problem,
    130 interrupted. A bad command line exits 2 from argparse (SystemExit).

    Turns core dumps off for the whole process first, and for good.
    """
    args = build_parser().parse_args(argv)
    no_core_dumps()
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
