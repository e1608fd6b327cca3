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
_MAX_LINE = 4096
_MAX_STANZAS = 1024
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


def parse_header(readline: Callable[[int], bytes]) -> Header:
    """Read a header through ``readline(limit)`` (a binary file's ``readline``).

    Leaves the file positioned at the payload nonce. Raises HeaderError for an
    empty file, a bad version line, a malformed stanza or MAC line, CR line ends.
    """
    consumed: list[bytes] = []

    def line() -> bytes:
        raw = readline(_MAX_LINE)
        if not consumed and raw and not raw.startswith(b"age-encryption.org/"):
            raise HeaderError("not an age file (no age-encryption.org/v1 line)")
        if not raw:
            raise HeaderError("the file ends inside the header" if consumed else "empty file")
        if not raw.endswith(b"\n"):
            raise HeaderError("a header line is too long or unterminated")
        consumed.append(raw)
        if b"\r" in raw:
            raise HeaderError("a header line contains a carriage return")
        return raw[:-1]

    if line() + b"\n" != VERSION_LINE:
        raise HeaderError("unsupported age version (this reads age-encryption.org/v1)")

    stanzas: list[Stanza] = []
    current = line()
    while current.startswith(b"->"):
        if len(stanzas) >= _MAX_STANZAS:
            raise HeaderError("too many recipient stanzas")
        if not current.startswith(b"-> "):
            raise HeaderError("a stanza line must start with '-> '")
        args = current[3:].split(b" ")
        if not all(_is_arg(a) for a in args):
            raise HeaderError("a stanza has an empty or invalid argument")
        body_lines = []
        while True:
            body_line = line()
            if len(body_line) > _BODY_COLUMNS:
                raise HeaderError("a stanza body line is longer than 64 columns")
            body_lines.append(body_line)
            if len(body_line) < _BODY_COLUMNS:
                break
        body = b64decode(b"".join(body_lines), "a stanza body")
        text = [a.decode("ascii") for a in args]
        stanzas.append(Stanza(text[0], tuple(text[1:]), body))
        current = line()

    if not current.startswith(b"--- "):
        raise HeaderError("expected a stanza or the '--- ' MAC line")
    mac_text = current[4:]
    if len(mac_text) != 43:
        raise HeaderError("the header MAC has the wrong length")
    mac = b64decode(mac_text, "the header MAC")
    head = b"".join(consumed)
    mac_input = head[: len(head) - len(current) - 1 + 3]
    return Header(tuple(stanzas), mac, mac_input, len(head))
