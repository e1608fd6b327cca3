"""The household's keys under ``<data dir>/keys/``.

``recipients.txt``
    Public ``age1…`` keys, one a line (the owner's first; then other household
    members, paper recovery keys). Every new clip is encrypted to all of them.
    This is all the recorder ever reads.
``identity.age``
    The owner's identity (``AGE-SECRET-KEY-1…``) as a plain age file encrypted
    under the owner's passphrase (scrypt), so the stock tool gets it back:
    ``age -d keys/identity.age > identity.txt``.

The scrypt work factor is chosen on the device at ``init``: about one second
of work, and never more memory than the device can spare (32 MiB on a board
with under 1 GiB of RAM, such as a Pi Zero 2 W).
"""

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from doorbell import vault
from doorbell.errors import DoorbellError, UsageError

log = logging.getLogger(__name__)

MIN_PASSPHRASE = 8
SMALL_DEVICE_RAM = 1 << 30
SMALL_DEVICE_KDF_MEMORY = 32 << 20
KDF_MEMORY_CEILING = 256 << 20  # age's own default, work factor 18
MIN_WORK_FACTOR = 10
_SCRYPT_BYTES_PER_N = 128 * 8  # 128 * r, with r = 8


class KeyringError(DoorbellError, OSError):
    """The keys folder is missing, incomplete or unreadable."""


def kdf_memory_cap(total_ram: int) -> int:
    """The most memory one passphrase derivation may use on a device with ``total_ram``."""
    if total_ram < SMALL_DEVICE_RAM:
        return SMALL_DEVICE_KDF_MEMORY
    return min(KDF_MEMORY_CEILING, total_ram // 8)


def max_work_factor_for(memory: int) -> int:
    """The largest scrypt work factor (log2 N) whose derivation fits in ``memory`` bytes."""
    return max(MIN_WORK_FACTOR, int(math.log2(memory // _SCRYPT_BYTES_PER_N)))


def choose_work_factor(
    probe_factor: int, probe_seconds: float, total_ram: int, target_seconds: float = 1.0
) -> int:
    """Pick log2 N so that one derivation takes about ``target_seconds``.

    scrypt's cost doubles with each step of the work factor, so the time of one
    probe at ``probe_factor`` predicts the rest. Capped by :func:`kdf_memory_cap`.
    """
    steps = math.log2(max(target_seconds, 1e-9) / max(probe_seconds, 1e-9))
    wanted = probe_factor + math.floor(steps + 0.5)
    cap = max_work_factor_for(kdf_memory_cap(total_ram))
    return max(MIN_WORK_FACTOR, min(wanted, cap))


def affordable_work_factor(ram: int | None = None) -> int:
    """The highest work factor this device can open without risking the OOM killer:
    a quarter of its memory, and never above age's own limit."""
    ram = total_ram() if ram is None else ram
    return min(vault.MAX_WORK_FACTOR, max_work_factor_for(ram // 4))


def total_ram() -> int:
    """Physical memory of this machine in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def measure_work_factor(clock: Callable[[], float] = time.perf_counter) -> int:
    """Time one small scrypt here and choose the work factor for this device."""
    probe = 14
    start = clock()
    vault.keys.scrypt_key("probe", bytes(16), probe)
    return choose_work_factor(probe, clock() - start, total_ram())


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise UsageError(f"the passphrase must have at least {MIN_PASSPHRASE} characters")


@dataclass(frozen=True)
class Keyring:
    """The ``keys/`` folder of one data dir."""

    folder: Path

    @classmethod
    def in_data_dir(cls, data_dir: str | os.PathLike[str]) -> "Keyring":
        return cls(Path(data_dir) / "keys")

    @property
    def recipients_file(self) -> Path:
        return self.folder / "recipients.txt"

    @property
    def identity_file(self) -> Path:
        return self.folder / "identity.age"

    def has_identity(self) -> bool:
        return self.identity_file.exists()

    def recipients(self) -> list[vault.X25519Recipient]:
        """Everyone new clips are encrypted to. Raises KeyringError if there is nobody."""
        try:
            text = self.recipients_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeyringError(
                f"{self.recipients_file}: no recipients yet; run 'doorbell keys init' first"
            ) from None
        return vault.parse_recipients(text, str(self.recipients_file))

    def init(self, passphrase: str, work_factor: int | None = None) -> vault.X25519Identity:
        """Make the owner identity; write ``identity.age`` and ``recipients.txt``."""
        check_passphrase(passphrase)
        if self.has_identity():
            raise UsageError(
                f"{self.identity_file} exists already; an owner identity is never replaced "
                "(move it away first if you really mean to start over)"
            )
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        identity = vault.X25519Identity.generate()
        factor = work_factor if work_factor is not None else measure_work_factor()
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"# created: {created}\n# public key: {identity.recipient}\n{identity.secret()}\n"
        with vault.create(self.identity_file, [vault.ScryptRecipient(passphrase, factor)]) as out:
            out.write(text.encode())
        self._append_recipient(identity.recipient, comment=f"owner, created {created}")
        return identity

    def unlock(self, passphrase: str) -> list[vault.X25519Identity]:
        """The owner's identities, decrypted into memory. Wrong passphrase: NoIdentityMatchError."""
        if not self.has_identity():
            raise KeyringError(f"{self.identity_file}: no owner identity; run 'doorbell keys init'")
        return vault.load_identities(
            self.identity_file, lambda: passphrase, affordable_work_factor()
        )

    def add_recipient(self, recipient: vault.X25519Recipient, comment: str = "") -> bool:
        """Add a recipient for new clips; False if it was there already."""
        if self.recipients_file.exists() and recipient in self.recipients():
            return False
        self._append_recipient(recipient, comment)
        return True

    def remove_recipient(self, recipient: vault.X25519Recipient) -> bool:
        """Stop encrypting new clips to ``recipient`` (its line, and the comment line just
        above it, leave ``recipients.txt``); False if it was not there."""
        try:
            lines = self.recipients_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return False
        kept: list[str] = []
        found = False
        for line in lines:
            if line.strip() == str(recipient):
                found = True
                if kept and kept[-1].startswith("#"):
                    kept.pop()
                continue
            kept.append(line)
        if found:
            _write_atomically(self.recipients_file, "".join(f"{line}\n" for line in kept))
        return found

    def _append_recipient(self, recipient: vault.X25519Recipient, comment: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        old = self.recipients_file.read_text() if self.recipients_file.exists() else ""
        if old and not old.endswith("\n"):
            old += "\n"
        note = f"# {comment}\n" if comment else ""
        _write_atomically(self.recipients_file, f"{old}{note}{recipient}\n")


class KeptRecipients:
    """The recipients new clips are encrypted to: ``keys/recipients.txt``, read afresh at
    each :meth:`check` and each clip, and the last list read well kept for when the file
    goes missing, unreadable or bad while the doorbell runs (a slip in a shell, a card
    fault). Recording then goes on to those keys, and :attr:`fault` says loudly why.

    ``recipients()`` → list (for the store, per clip); ``check()`` → whether anything can
    be encrypted (for the camera loop, once a second). ``fault`` is one line for the status
    page, the journal and systemd's STATUS=, or None. Before the owner's first key there
    is nothing to keep and no fault: the doorbell waits for set-up. Nothing is ever
    written unencrypted. Thread-safe: the camera thread checks, the store reads.
    """

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._kept: list[vault.X25519Recipient] | None = None
        self._lock = threading.Lock()
        self.fault: str | None = None

    def recipients(self) -> list[vault.X25519Recipient]:
        """The file's recipients, or the kept ones if it cannot be read now. Raises
        KeyringError (or a VaultError naming the file) only if none were ever read."""
        try:
            found = self._keyring.recipients()
        except (DoorbellError, OSError, UnicodeDecodeError) as err:
            path = self._keyring.recipients_file
            with self._lock:
                kept = self._kept
                if kept is None:  # never read: before set-up, or bad from the start
                    if path.exists():
                        self._set_fault(
                            f"{_reason(err, path)}: nothing can be encrypted, so nothing is recorded"
                        )
                    raise
                reason = _reason(err, path) if path.exists() else f"{path} is missing"
                self._set_fault(
                    f"{reason}: new clips are still encrypted to the {len(kept)} key(s) "
                    "read before; put the file back"
                )
                return list(kept)
        with self._lock:
            if self.fault is not None:
                log.warning("keys: %s is readable again", self._keyring.recipients_file)
            self.fault = None
            self._kept = found
        return found

    def current(self) -> list[vault.X25519Recipient]:
        """What new clips are encrypted to now (the file's, or the kept ones); [] if none."""
        try:
            return self.recipients()
        except (DoorbellError, OSError, UnicodeDecodeError):
            return []

    def check(self) -> bool:
        """Whether new clips can be encrypted to anyone now (the file, or kept keys)."""
        try:
            self.recipients()
        except (DoorbellError, OSError, UnicodeDecodeError):
            return False
        return True

    def _set_fault(self, fault: str) -> None:
        if fault != self.fault:
            log.error("keys: %s", fault)
        self.fault = fault


def _reason(err: BaseException, path: Path) -> str:
    """What went wrong with the recipients file at ``path``, in words, naming it."""
    if isinstance(err, DoorbellError):
        return str(err)
    if isinstance(err, OSError):
        return f"{path}: cannot be read ({err.strerror})"
    return f"{path}: not text (byte {getattr(err, 'start', 0)} is not UTF-8)"


def _write_atomically(path: Path, text: str) -> None:
    part = path.with_name(path.name + ".tmp")
    with open(part, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    part.replace(path)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
