"""Login by proof of possession: a random challenge only the owner's identity opens.

    file, challenge_id = challenges.issue(owner)      # an age file to the owner's recipient
    owner_id = challenges.answer(challenge_id, nonce) # None: wrong, used or too old

The device encrypts 32 random bytes to the owner's recipient (age, X25519 stanza) and
keeps only their SHA-256; the browser decrypts the file with the identity it holds and
sends the bytes back. So the device stores nothing that lets anyone log in, and a
guesser gets no nearer with every try (2^256 answers). Each challenge is good once,
for :data:`LIFETIME` seconds; at most :data:`MAX_OPEN` are open at a time (the oldest
go first). Clock: monotonic, injected.
"""

import collections
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable

from doorbell import vault

LIFETIME = 120.0  # seconds
MAX_OPEN = 256
NONCE_BYTES = 32


class Challenges:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._open: collections.OrderedDict[str, tuple[bytes, str, float]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def issue(self, owner_id: str, recipient: str) -> tuple[bytes, str]:
        """(the age file holding a fresh nonce for ``recipient``, the challenge's id)."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        file = vault.encrypt_bytes(nonce, [vault.X25519Recipient.parse(recipient)])
        challenge_id = secrets.token_urlsafe(16)
        with self._lock:
            self._open[challenge_id] = (hashlib.sha256(nonce).digest(), owner_id, self._clock())
            while len(self._open) > MAX_OPEN:
                self._open.popitem(last=False)
        return file, challenge_id

    def answer(self, challenge_id: str, nonce: bytes) -> str | None:
        """The owner whose challenge ``nonce`` answers; the challenge is used up either way."""
        with self._lock:
            entry = self._open.pop(challenge_id, None)
        if entry is None:
            return None
        digest, owner_id, issued = entry
        if self._clock() - issued > LIFETIME:
            return None
        if not hmac.compare_digest(hashlib.sha256(nonce).digest(), digest):
            return None
        return owner_id
