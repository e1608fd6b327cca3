"""The owners: who holds a key to the clips, in ``<data dir>/keys/owners.json``.

    owners = Owners(keyring)
    owner = owners.add("Alice", recipient, wrapped=age_file_bytes, auth=AuthRecord(...))
    owners.get(owner.id), owners.find("alice"), owners.list(), owners.remove(owner.id)

An owner is a name, an age recipient (their public key: every new clip is encrypted to
it, through ``recipients.txt``, which the recorder reads) and, to help a new browser of
theirs, their identity *wrapped* under their passphrase: an age file with one scrypt
stanza, made in their browser. The device cannot open it. It is released only to a
client that proves the passphrase online, by :class:`AuthRecord`: the browser derives
``auth = scrypt(passphrase, "doorbell.org/v1/auth" || salt)`` and sends it; the device
keeps only SHA-256 of it, the verifier. This is the scheme of Bitwarden's "master
password hash" (a second, independent KDF output proves the passphrase; the key that
wraps is never sent); docs/ARCHITECTURE.md says why it was chosen over SRP and OPAQUE.

Nothing here lets anyone log in: login is a challenge encrypted to the owner's
recipient (:mod:`doorbell.owners.challenge`). Also kept: paper recovery recipients
(``doorbell keys recovery``), open invites (only their SHA-256) and a random secret
that makes the answer for an unknown name look like one for a real owner.

The file is read afresh on every call (the CLI may change it beside the service) and
written atomically under an flock, mode 0600.
"""

import base64
import builtins
import contextlib
import datetime
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from doorbell import vault
from doorbell.errors import DoorbellError
from doorbell.owners import codes
from doorbell.store.keyring import Keyring

OWNERS_FILE = "owners.json"
AUTH_LABEL = b"doorbell.org/v1/auth"
MAX_NAME = 40
MAX_WRAPPED = 2048  # bytes: a wrapped identity file is about 400
MIN_WORK_FACTOR, MAX_WORK_FACTOR = 10, 20
INVITE_SECONDS = 24 * 3600.0


class OwnersError(DoorbellError):
    """A request about owners that cannot be done (a clear sentence, no secret in it)."""


@dataclass(frozen=True)
class AuthRecord:
    """How a passphrase is proved: the salt and scrypt work factor the browser uses,
    and SHA-256 (hex) of the 32-byte result."""

    salt: str  # base64, 16 bytes
    work_factor: int
    verifier: str

    @classmethod
    def from_auth(cls, salt: bytes, work_factor: int, auth: bytes) -> "AuthRecord":
        if len(salt) != 16 or len(auth) != 32:
            raise OwnersError("auth: a 16-byte salt and a 32-byte key are needed")
        check_work_factor(work_factor)
        return cls(base64.b64encode(salt).decode(), work_factor, hashlib.sha256(auth).hexdigest())

    def proves(self, auth: bytes) -> bool:
        return hmac.compare_digest(hashlib.sha256(auth).hexdigest(), self.verifier)


def derive_auth(passphrase: str, salt: bytes, work_factor: int) -> bytes:
    """What an owner's browser sends to prove the passphrase (the same derivation as
    ``authKey`` in static/vault.js). For tests and tools: the device never calls it."""
    return hashlib.scrypt(
        passphrase.encode(),
        salt=AUTH_LABEL + salt,
        n=2**work_factor,
        r=8,
        p=1,
        maxmem=(2**work_factor) * 1024 + (1 << 20),
        dklen=32,
    )


def check_work_factor(work_factor: object) -> int:
    if not isinstance(work_factor, int) or not MIN_WORK_FACTOR <= work_factor <= MAX_WORK_FACTOR:
        raise OwnersError(f"work_factor: a whole number {MIN_WORK_FACTOR}-{MAX_WORK_FACTOR}")
    return work_factor


def check_name(name: object) -> str:
    """An owner's name as kept: NFC, trimmed, 1-40 printable characters."""
    if not isinstance(name, str):
        raise OwnersError("name: a short text is needed")
    name = unicodedata.normalize("NFC", name).strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise OwnersError(f"name: 1-{MAX_NAME} printable characters")
    return name


def check_wrapped(wrapped: bytes) -> bytes:
    """A wrapped identity: an age file whose only stanza is scrypt (not opened here)."""
    if not 0 < len(wrapped) <= MAX_WRAPPED:
        raise OwnersError(f"wrapped identity: 1-{MAX_WRAPPED} bytes")
    if not wrapped.startswith(b"age-encryption.org/v1\n-> scrypt "):
        raise OwnersError("wrapped identity: an age file encrypted under a passphrase is needed")
    return wrapped


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _checked_new(
    owners: "list[Owner]", name: str, recipient: str, wrapped: bytes | None
) -> tuple[str, vault.X25519Recipient]:
    """(the name as kept, the parsed recipient) of a new owner; OwnersError if either is
    malformed or taken by one of ``owners``, or ``wrapped`` is not a wrapped identity."""
    name = check_name(name)
    parsed = vault.X25519Recipient.parse(recipient)
    if wrapped is not None:
        check_wrapped(wrapped)
    for owner in owners:
        if owner.name.casefold() == name.casefold():
            raise OwnersError(f"an owner called {name!r} exists already: choose another name")
        if owner.recipient == str(parsed):
            raise OwnersError("that key belongs to an owner already")
    return name, parsed


@dataclass(frozen=True)
class Owner:
    id: str
    name: str
    recipient: str
    created: str
    wrapped: str | None = None  # base64 of the wrapped identity file
    auth: AuthRecord | None = None

    def public(self) -> dict:
        """What the owners page shows: never the wrapped identity or the verifier."""
        return {
            "id": self.id,
            "name": self.name,
            "recipient": self.recipient,
            "created": self.created,
        }


@dataclass
class _State:
    owners: list[Owner] = field(default_factory=list)
    recovery: list[dict] = field(default_factory=list)  # {"recipient", "created"}
    invites: list[dict] = field(default_factory=list)  # {"digest", "expires", "by"}
    secret: str = ""


class Owners:
    """``keys/owners.json`` beside ``keys/recipients.txt``. Thread- and process-safe."""

    def __init__(self, keyring: Keyring, clock: Callable[[], float] = time.time) -> None:
        self.keyring = keyring
        self.path = keyring.folder / OWNERS_FILE
        self._clock = clock
        self._parsed: tuple[tuple[int, int, int], _State] | None = None

    # -- reading ------------------------------------------------------------------------

    def _read(self) -> _State:
        """The file's state; parsed again only when the file changed (every write replaces
        it, so a new inode), since the web reads it on every request. A fresh copy each
        time: callers change what they get."""
        try:
            stat = self.path.stat()
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._parsed is None or self._parsed[0] != key:
                self._parsed = (key, self._parse(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return _State()
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise OwnersError(f"{self.path} cannot be read: {err}") from None
        state = self._parsed[1]
        return _State(list(state.owners), list(state.recovery), list(state.invites), state.secret)

    @staticmethod
    def _parse(text: str) -> _State:
        raw = json.loads(text)
        owners = []
        for item in raw.get("owners", []):
            auth = AuthRecord(**item["auth"]) if item.get("auth") else None
            owners.append(Owner(**{**item, "auth": auth}))
        return _State(
            owners, raw.get("recovery", []), raw.get("invites", []), raw.get("secret", "")
        )

    def list(self) -> builtins.list[Owner]:
        return self._read().owners

    def has_owner(self) -> bool:
        return bool(self.list())

    def get(self, owner_id: str) -> Owner | None:
        return next((o for o in self.list() if o.id == owner_id), None)

    def find(self, name: str) -> Owner | None:
        """The owner called ``name`` (case and spacing at the ends do not matter)."""
        try:
            wanted = check_name(name).casefold()
        except OwnersError:
            return None
        return next((o for o in self.list() if o.name.casefold() == wanted), None)

    def recovery(self) -> builtins.list[dict]:
        return self._read().recovery

    def lookup(self, name: str) -> dict:
        """What a new browser needs to prove the passphrase of the owner called ``name``:
        ``{"owner", "salt", "work_factor"}``. For a name nobody has, an answer of the same
        shape that never stops being the same (derived from a secret kept here), so the
        answer does not tell whether the name is an owner's."""
        owner = self.find(name)
        if owner is not None and owner.auth is not None:
            auth = owner.auth
            return {"owner": owner.id, "salt": auth.salt, "work_factor": auth.work_factor}
        secret = bytes.fromhex(self._secret())
        key = (name if isinstance(name, str) else "").strip().casefold().encode()
        fake = hmac.new(secret, key, hashlib.sha256).digest()
        factor = next((o.auth.work_factor for o in self.list() if o.auth), 16)
        return {
            "owner": fake[:8].hex(),
            "salt": base64.b64encode(fake[8:24]).decode(),
            "work_factor": factor,
        }

    def _secret(self) -> str:
        secret = self._read().secret
        if secret:
            return secret
        with self._changing() as state:
            if not state.secret:
                state.secret = secrets.token_hex(32)
            return state.secret

    # -- changing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _changing(self) -> Iterator[_State]:
        self.keyring.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_fd = os.open(self.keyring.folder / "owners.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            state = self._read()
            yield state
            self._write(state)
        finally:
            os.close(lock_fd)

    def _write(self, state: _State) -> None:
        data = {
            "version": 1,
            "owners": [asdict(o) for o in state.owners],
            "recovery": state.recovery,
            "invites": state.invites,
            "secret": state.secret,
        }
        part = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        part.replace(self.path)

    def check_new(self, name: str, recipient: str, wrapped: bytes | None = None) -> None:
        """Raise OwnersError if :meth:`add` would refuse these (taken or malformed)."""
        _checked_new(self.list(), name, recipient, wrapped)

    def add(
        self,
        name: str,
        recipient: str,
        wrapped: bytes | None = None,
        auth: AuthRecord | None = None,
    ) -> Owner:
        """A new owner; new clips are encrypted to ``recipient`` from now on.

        Raises OwnersError if the name or the recipient is taken or malformed."""
        with self._changing() as state:
            name, parsed = _checked_new(state.owners, name, recipient, wrapped)
            owner = Owner(
                id=secrets.token_hex(8),
                name=name,
                recipient=str(parsed),
                created=_now_iso(),
                wrapped=base64.b64encode(wrapped).decode() if wrapped is not None else None,
                auth=auth,
            )
            state.owners.append(owner)
            self.keyring.add_recipient(parsed, f"owner {name}, paired {owner.created}")
        return owner

    def remove(self, owner_id: str) -> Owner:
        """Remove an owner: new clips are no longer encrypted to them. The last owner
        stays (the clips would be encrypted to nobody who can watch them)."""
        with self._changing() as state:
            owner = next((o for o in state.owners if o.id == owner_id), None)
            if owner is None:
                raise OwnersError("no such owner")
            if len(state.owners) == 1:
                raise OwnersError("the last owner cannot be removed: invite another owner first")
            state.owners.remove(owner)
            self.keyring.remove_recipient(vault.X25519Recipient.parse(owner.recipient))
        return owner

    def set_wrapped(self, owner_id: str, wrapped: bytes, auth: AuthRecord) -> Owner:
        """A new passphrase: the owner's browser re-wrapped the same identity."""
        check_wrapped(wrapped)
        with self._changing() as state:
            for i, owner in enumerate(state.owners):
                if owner.id == owner_id:
                    new = Owner(
                        owner.id,
                        owner.name,
                        owner.recipient,
                        owner.created,
                        base64.b64encode(wrapped).decode(),
                        auth,
                    )
                    state.owners[i] = new
                    return new
        raise OwnersError("no such owner")

    def add_recovery(self, recipient: vault.X25519Recipient) -> None:
        """A paper recovery key: its recipient only; new clips are encrypted to it."""
        with self._changing() as state:
            state.recovery.append({"recipient": str(recipient), "created": _now_iso()})
            self.keyring.add_recipient(recipient, f"paper recovery key, made {_now_iso()}")

    # -- invites ------------------------------------------------------------------------

    def new_invite(self, by: str, seconds: float = INVITE_SECONDS) -> tuple[str, float]:
        """A one-time invite code from owner ``by``; (code, expires at, wall seconds)."""
        code = codes.new_code()
        expires = self._clock() + seconds
        with self._changing() as state:
            now = self._clock()
            state.invites = [i for i in state.invites if i["expires"] > now]
            state.invites.append({"digest": codes.digest(code), "expires": expires, "by": by})
        return code, expires

    def use_invite(self, code: str) -> bool:
        """Whether ``code`` is an open invite; it is used up if it is."""
        wanted = codes.digest(code)
        with self._changing() as state:
            now = self._clock()
            state.invites = [i for i in state.invites if i["expires"] > now]
            for invite in state.invites:
                if hmac.compare_digest(invite["digest"], wanted):
                    state.invites.remove(invite)
                    return True
        return False
