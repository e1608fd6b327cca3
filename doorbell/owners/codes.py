"""One-time codes: the setup code that proves presence at the device, and invites.

    code = new_code()                  # "K7QM-2XHD": 8 symbols, 40 bits
    normalise(" k7qm 2xhd ")           # "K7QM2XHD": case, spaces and dashes do not matter
    digest(code)                       # what is stored of an invite: its SHA-256, hex

The alphabet is Crockford's base32 (no I, L, O, U), so a code read off a terminal or a
sheet of paper is typed back right; ``normalise`` also reads ``O`` as ``0`` and ``I``
or ``L`` as ``1``. 40 bits against an online, throttled guesser
(:mod:`doorbell.owners.throttle`) is out of reach: at the throttle's pace of one guess
per five minutes, a million years.

The setup code lives in ``<data dir>/setup-code`` (mode 0600), outside ``keys/``, made
by ``doorbell setup-code`` or by the service when there is no owner; it is removed when
an owner pairs with it. Losing ``keys/`` therefore never reopens pairing to the
network: someone at the device must show a new code.
"""

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
SYMBOLS = 8
SETUP_CODE_FILE = "setup-code"
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code(symbols: int = SYMBOLS) -> str:
    """A fresh random code, grouped in fours with a dash."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(symbols))
    return "-".join(raw[i : i + 4] for i in range(0, symbols, 4))


def normalise(code: str) -> str:
    """``code`` as typed, reduced to its symbols: upper case, no spaces or dashes."""
    kept = "".join(ch for ch in code.upper() if not ch.isspace() and ch != "-")
    return kept.translate(_READ_AS)


def digest(code: str) -> str:
    """SHA-256 (hex) of the normalised code: what is stored of an invite."""
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def same(typed: str, expected: str) -> bool:
    """Whether ``typed`` is ``expected``, in constant time."""
    return hmac.compare_digest(normalise(typed).encode(), normalise(expected).encode())


class SetupCode:
    """``<data dir>/setup-code``: the one code that pairs an owner without an invite."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / SETUP_CODE_FILE

    def read(self) -> str | None:
        """The current code, or None if there is none (or it cannot be read)."""
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return text if len(normalise(text)) == SYMBOLS else None

    def ensure(self) -> str:
        """The current code, made first if there is none."""
        return self.read() or self.new()

    def new(self) -> str:
        """Replace the code with a new one (0600), and return it."""
        code = new_code()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        part = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(code + "\n")
            out.flush()
            os.fsync(out.fileno())
        part.replace(self.path)
        return code

    def matches(self, typed: str) -> bool:
        """Whether ``typed`` is the current code."""
        current = self.read()
        return current is not None and same(typed, current)

    def consume(self) -> None:
        """The code was used: remove it (a new one comes from ``doorbell setup-code``)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
