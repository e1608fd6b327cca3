"""What every group of subcommands shares: the data dir, the config path, the
passphrase (from a file or asked on the terminal), and keeping secrets out of core
dumps. Nothing here imports more than the standard library."""

import argparse
import os
import sys

from doorbell.errors import UsageError

DEFAULT_DATA_DIR = "/var/lib/doorbell"


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the ``--data-dir D`` option that :func:`data_dir` reads."""
    parser.add_argument(
        "--data-dir",
        metavar="D",
        help=f"data folder (default: $DOORBELL_DATA_DIR or {DEFAULT_DATA_DIR})",
    )


def data_dir(args: argparse.Namespace) -> str:
    """The data folder: ``--data-dir``, else ``$DOORBELL_DATA_DIR``, else
    :data:`DEFAULT_DATA_DIR`. A path; it need not exist yet."""
    return args.data_dir or os.environ.get("DOORBELL_DATA_DIR") or DEFAULT_DATA_DIR


def config_path(given: str | None) -> str:
    """The config file to read: ``given``, else ``$DOORBELL_CONFIG``, else
    ``/etc/doorbell/doorbell.toml``. A path; it need not exist."""
    from doorbell.config import DEFAULT_PATH

    return given or os.environ.get("DOORBELL_CONFIG") or DEFAULT_PATH


def read_passphrase_file(path: str) -> str:
    """The first line of ``path``, without its line ending.

    Raises UsageError naming ``path`` (never its content) if the file cannot be read
    or its first line is empty.
    """
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

    try:
        return getpass.getpass(prompt)
    except EOFError:  # Ctrl-D at the prompt
        print(file=sys.stderr)
        raise UsageError("no passphrase given (end of input at the prompt)") from None


def passphrase(args: argparse.Namespace, confirm: bool = False) -> str:
    """The owner's passphrase: from ``--passphrase-file``, else asked on the terminal
    without echo (twice if ``confirm``).

    Raises UsageError if there is no file and no terminal, if the file is unreadable
    or empty, or if the two answers differ.
    """
    if args.passphrase_file:
        return read_passphrase_file(args.passphrase_file)
    first = _ask("Passphrase: ")
    if confirm and _ask("Same passphrase again: ") != first:
        raise UsageError("the two passphrases differ; nothing was changed")
    return first


def no_core_dumps() -> None:
    """Law 1: the owner's identity, held in memory while unlocked, must never reach a
    core dump. No core file at all (RLIMIT_CORE 0, soft and hard, for good), and not
    dumpable (which also keeps other processes of the same user from attaching to read
    its memory). Applies to the whole process; off Linux only the rlimit is set."""
    import ctypes
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):  # not Linux: the rlimit is what there is
        pass
