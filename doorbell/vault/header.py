"""The age v1 header: version line, recipient stanzas, MAC.

Strict by design: the parser accepts exactly the canonical encoding the spec
(age-encryption.org/v1) allows and raises :class:`HeaderError` for anything
else, as the CCTV vectors demand. Nothing here knows about keys; see ``keys``.
"""

import base64
import binascii
from collections.abc import Callable
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from doorbell.vault.errors import HeaderError

VERSION_LINE = b"age-encryption.org/v1\n"
FILE_KEY_SIZE = 16
MAC_SIZE = 32
_BODY_COLUMNS = 64

# Limits no real age file reaches, so that a crafted header is refused with a
# HeaderError naming the limit before it costs memory or time. The largest real
# stanzas: mlkem768x25519 (post-quantum hybrid) 1,557 bytes, its argument 1,494
# base64 characters; ssh-rsa with a 4096-bit key about 710 bytes, its body 512
# bytes; scrypt 100; X25519 98 (a 32-byte body). At most 2 arguments (scrypt,
# ssh-ed25519, piv-p256). 1024 recipients of the largest kind (1.6 MB) still fit.
MAX_HEADER_SIZE = 2 << 20
"""Bytes from the start of the file to the end of the MAC line: 2 MiB.

1024 X25519 stanzas take 100 KB, 1024 mlkem768x25519 ones 1.6 MB. Parsing
holds about three times the header in memory at most, so 6 MiB."""
MAX_STANZAS = 1024
"""Recipient stanzas in one header, as age's own parser allows."""
MAX_STANZA_ARGS = 16
"""Arguments after a stanza's type: eight times the most a known kind uses (2)."""
MAX_STANZA_BODY = 4096
"""Bytes of one stanza's body, decoded: an ssh-rsa stanza of a 16384-bit key (2048
bytes) fits twice; every other known kind's body is 32 bytes."""
MAX_LINE = 4096
"""Bytes of one header line before its LF (the stanza line with its arguments): the
mlkem768x25519 stanza's 1,512 fits more than twice."""
_MAX_BODY_TEXT = -(-MAX_STANZA_BODY * 4 // 3)  # unpadded base64 characters
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class Stanza(NamedTuple):
    """One recipient stanza: a type, its arguments, and a binary body."""

    type: str
    args: tuple[str, ...]
    body: bytes

    def encode(self) -> bytes:
        line = " ".join(("->", self.type, *self.args)).encode("ascii") + b"\n"
        text = b64encode(self.body)
        lines = [text[i : i + _BODY_COLUMNS] for i in range(0, len(text), _BODY_COLUMNS)]
        if not lines or len(lines[-1]) == _BODY_COLUMNS:
            lines.append(b"")  # a body always ends with a short (maybe empty) line
        return line + b"".join(chunk + b"\n" for chunk in lines)


class Header(NamedTuple):
    """A parsed header. ``mac_input`` is every byte the MAC covers."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    mac_input: bytes
    size: int  # bytes from the start of the file to the end of the MAC line

    def verify_mac(self, file_key: bytes) -> bool:
        mac = _mac(file_key, self.mac_input)
        try:
            mac.verify(self.mac)  # constant time
        except InvalidSignature:
            return False
        return True


def b64encode(data: bytes) -> bytes:
    """Standard base64 without padding, as age writes it."""
    return base64.b64encode(data).rstrip(b"=")


def b64decode(text: bytes | str, what: str) -> bytes:
    """Decode canonical unpadded base64 or raise HeaderError naming ``what``."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    if not set(raw) <= _B64_ALPHABET or len(raw) % 4 == 1:
        raise HeaderError(f"{what} is not unpadded base64")
    try:
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error:
        raise HeaderError(f"{what} is not unpadded base64") from None
    if b64encode(data) != raw:
        raise HeaderError(f"{what} is not canonical base64")
    return data


def hkdf(key: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(key)


def _mac(file_key: bytes, mac_input: bytes) -> HMAC:
    mac = HMAC(hkdf(file_key, b"", b"header"), hashes.SHA256())
    mac.update(mac_input)
    return mac


def header_mac(file_key: bytes, mac_input: bytes) -> bytes:
    return _mac(file_key, mac_input).finalize()


def encode_header(stanzas: list[Stanza], file_key: bytes) -> bytes:
    """The complete header for ``stanzas``, MAC line included."""
    mac_input = VERSION_LINE + b"".join(s.encode() for s in stanzas) + b"---"
    return mac_input + b" " + b64encode(header_mac(file_key, mac_input)) + b"\n"


def _is_arg(arg: bytes) -> bool:
    return bool(arg) and all(33 <= c <= 126 for c in arg)


class _HeaderLines:
    """The header's lines read through ``readline(limit)``, within :data:`MAX_HEADER_SIZE`.

    No single read asks for more than the line's own limit or what is left of the
    header's budget, so a crafted file costs at most the budget in memory.
    """

    def __init__(self, readline: Callable[[int], bytes]) -> None:
        self._readline = readline
        self.head = bytearray()  # every byte read so far

    def next(self, longest: int, what: str) -> bytes:
        """The next line without its LF, at most ``longest`` bytes; ``what`` names the
        line in the error for a longer one. Raises HeaderError."""
        room = MAX_HEADER_SIZE - len(self.head)
        if room <= 0:
            raise _too_big()
        limit = min(longest + 1, room)
        raw = self._readline(limit)
        if not self.head and raw and not raw.startswith(b"age-encryption.org/"):
            raise HeaderError("not an age file (no age-encryption.org/v1 line)")
        if not raw:
            raise HeaderError("the file ends inside the header" if self.head else "empty file")
        self.head += raw
        if not raw.endswith(b"\n"):
            if len(raw) < limit:
                raise HeaderError("the file ends inside the header")
            if room <= longest:  # the budget, not the line's own limit, cut it
                raise _too_big()
            raise HeaderError(f"{what} is longer than {longest} bytes")
        if b"\r" in raw:
            raise HeaderError("a header line contains a carriage return")
        return raw[:-1]


def _too_big() -> HeaderError:
    return HeaderError(
        f"the header is larger than {MAX_HEADER_SIZE >> 20} MiB, which no real age file's "
        "is (1024 recipients of the largest kind take 1.6 MB)"
    )


def parse_header(readline: Callable[[int], bytes]) -> Header:
    """Read a header through ``readline(limit)`` (a binary file's ``readline``).

    Leaves the file positioned at the payload nonce. Raises HeaderError for an
    empty file, a bad version line, a malformed stanza or MAC line, CR line ends,
    and for a header past the limits above (:data:`MAX_HEADER_SIZE`,
    :data:`MAX_STANZAS`, :data:`MAX_STANZA_ARGS`, :data:`MAX_STANZA_BODY`,
    :data:`MAX_LINE`), as soon as the limit is passed, before reading further.
    """
    lines = _HeaderLines(readline)
    if lines.next(MAX_LINE, "the version line") + b"\n" != VERSION_LINE:
        raise HeaderError("unsupported age version (this reads age-encryption.org/v1)")

    stanzas: list[Stanza] = []
    current = lines.next(MAX_LINE, "a stanza line")
    while current.startswith(b"->"):
        if len(stanzas) >= MAX_STANZAS:
            raise HeaderError(f"more than {MAX_STANZAS} recipient stanzas")
        if not current.startswith(b"-> "):
            raise HeaderError("a stanza line must start with '-> '")
        args = current[3:].split(b" ")
        if len(args) - 1 > MAX_STANZA_ARGS:
            raise HeaderError(f"a stanza has more than {MAX_STANZA_ARGS} arguments")
        if not all(_is_arg(a) for a in args):
            raise HeaderError("a stanza has an empty or invalid argument")
        body_lines = []
        text_size = 0
        while True:
            body_line = lines.next(_BODY_COLUMNS, "a stanza body line")
            text_size += len(body_line)
            if text_size > _MAX_BODY_TEXT:
                raise HeaderError(f"a stanza body is larger than {MAX_STANZA_BODY} bytes")
            body_lines.append(body_line)
            if len(body_line) < _BODY_COLUMNS:
                break
        body = b64decode(b"".join(body_lines), "a stanza body")
        text = [a.decode("ascii") for a in args]
        stanzas.append(Stanza(text[0], tuple(text[1:]), body))
        current = lines.next(MAX_LINE, "a stanza line")

    if not current.startswith(b"--- "):
        raise HeaderError("expected a stanza or the '--- ' MAC line")
    mac_text = current[4:]
    if len(mac_text) != 43:
        raise HeaderError("the header MAC has the wrong length")
    mac = b64decode(mac_text, "the header MAC")
    size = len(lines.head)
    mac_input = bytes(memoryview(lines.head)[: size - len(current) - 1 + 3])
    return Header(tuple(stanzas), mac, mac_input, size)
