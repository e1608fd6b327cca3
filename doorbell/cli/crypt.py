"""``doorbell encrypt`` and ``doorbell decrypt``: the vault as a tool, with age's
flags (``-r``, ``-R``, ``-i``, ``-o``), standard input and output when no file is
named. Imports the vault only: no video stack."""

import argparse
import contextlib
import os
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from doorbell.cli.common import passphrase
from doorbell.errors import UsageError

if TYPE_CHECKING:
    from doorbell.vault import Reader

READ_BLOCK = 1 << 20  # bytes read from the input at a time


def _input(path: str | None) -> BinaryIO:
    if path in (None, "-"):
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as err:
        raise UsageError(f"{path}: cannot open ({err.strerror})") from None


def cmd_encrypt(args: argparse.Namespace) -> int:
    """Encrypt the input (a file, or standard input) to every ``-r`` key and every key
    in each ``-R`` file, to ``-o OUT`` or standard output. Returns 0.

    Raises UsageError without recipients, for a terminal as output, for an unreadable
    input or recipients file, or if ``OUT.part`` exists; a DoorbellError for a bad key.
    A failed ``-o`` encryption leaves no output file.
    """
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
        while block := source.read(READ_BLOCK):
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
            identities += vault.load_identities(path, lambda: passphrase(args))
        except OSError as err:
            raise UsageError(f"{path}: cannot read the identity file ({err.strerror})") from None
    return identities


def _copy_range(
    reader: "Reader", out: Callable[[memoryview], object], offset: int, length: int
) -> None:
    """Plaintext bytes ``offset`` to ``offset + length`` to ``out``, a chunk at a time
    through one buffer: memory stays at one chunk whatever the length."""
    from doorbell.vault import CHUNK_SIZE

    reader.seek(offset)
    block = memoryview(bytearray(min(CHUNK_SIZE, length)))
    remaining = length
    while remaining > 0:
        got = reader.readinto(block[: min(len(block), remaining)])
        if not got:
            break
        out(block[:got])
        remaining -= got


def cmd_decrypt(args: argparse.Namespace) -> int:
    """Decrypt the input (a file, or standard input) with the ``-i`` identities, to
    ``-o OUT`` or standard output: all of it, a byte range (``--offset N``/``--length
    M``, in plaintext bytes, a file only), or with ``--recover`` the intact prefix of a
    damaged or unfinished file (a video cut back to its last whole MP4 fragment, so
    strict players play it to its end) and a line on stderr saying what was lost.
    Returns 0.

    Raises UsageError for a missing ``-i``, flags that do not combine, or an unreadable
    input or identity file; a DoorbellError naming the file for a header, identity,
    MAC or payload failure, in which case no partial ``OUT`` is left behind.
    """
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
    try:
        target = Output(args.output) if args.output else None
    except BaseException:
        source.close()
        raise
    stream = target.file if target else sys.stdout.buffer
    out = vault.StreamSink(stream)
    ok = False
    try:
        if args.recover:
            from doorbell.store.fragments import Trimmed, trim

            report, trimmed = vault.Recovery(), Trimmed()
            for chunk in trim(vault.recover(source, identities, report, name), trimmed):
                out.write(chunk)
            said = report.describe()
            if trimmed.is_mp4 and trimmed.dropped:  # a strict player plays it to its end
                said += (
                    f"; the video is cut back {trimmed.dropped} bytes to its last whole "
                    f"fragment ({trimmed.fragments} kept)"
                )
            print(f"doorbell: {name}: {said}", file=sys.stderr)
        elif ranged:
            with vault.Reader(source, identities, name) as reader:
                offset = args.offset or 0
                length = args.length if args.length is not None else max(0, reader.size - offset)
                _copy_range(reader, stream.write, offset, length)
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
        if target is not None:
            target.close(keep=ok)
        source.close()
    return 0


class Output:
    """Where ``-o OUT`` plaintext goes, so that a failure never harms what was there.

    A regular file (or a new one) is written as ``OUT.part`` (private to the user) and
    renamed over ``OUT`` only when everything decrypted: a damaged input leaves an
    existing ``OUT`` as it was and no partial file. Anything else that exists (a
    device such as ``/dev/null``, a FIFO) is written to directly and never removed.
    Raises UsageError if ``OUT.part`` exists or ``OUT`` cannot be opened.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            found = os.stat(path)
        except FileNotFoundError:
            found = None
        except OSError as err:
            raise UsageError(f"{path}: cannot write the output ({err.strerror})") from None
        self.direct = found is not None and not stat.S_ISREG(found.st_mode)
        self.part = path if self.direct else path + ".part"
        flags = os.O_WRONLY | os.O_CLOEXEC | (0 if self.direct else os.O_CREAT | os.O_EXCL)
        try:
            fd = os.open(self.part, flags, 0o600)
        except FileExistsError:
            raise UsageError(
                f"{self.part} exists: an earlier decrypt did not finish; remove it first"
            ) from None
        except OSError as err:
            raise UsageError(f"{self.part}: cannot write the output ({err.strerror})") from None
        self.file = os.fdopen(fd, "wb")

    def close(self, keep: bool) -> None:
        """Close it; ``keep``: put it in place, else remove what this run made."""
        self.file.close()
        if self.direct:
            return
        if keep:
            os.replace(self.part, self.path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.part)


def _nonnegative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``encrypt`` and ``decrypt`` to the top-level ``commands``."""
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
