"""Growing waits after failed guesses, per client and per owner, kept across restarts.

    throttle = Throttle(path=data_dir / "throttle.json", clock=time.time)
    keys = [client_key(request.remote), f"owner:{owner_id}"]
    wait = throttle.wait(keys)          # seconds until the next guess is allowed: 0 = now
    throttle.failed(keys)  /  throttle.succeeded(keys)

What is throttled: every check of a secret a stranger could guess online, that is the
setup code, an invite code and the passphrase proof that releases an owner's wrapped
identity to a new browser. Login itself is not: it proves possession of the identity
(a challenge only the identity opens), which no number of guesses gets nearer to, so
an owner on a browser that already holds their wrapped identity always gets in however
hard someone else hammers the throttle.

Each key counts its own failures: the first :data:`FREE_FAILURES` are free (typos),
then 1, 2, 4 … seconds, at most :data:`MAX_DELAY`. A client is its IPv4 address or its
IPv6 /64 (one household's devices share a /64; an attacker cannot hop addresses within
it to get fresh counts). The counts are written to disk on every failure, so a restart
gives no free guesses. Times are wall-clock seconds (they must survive a restart); a
clock stepped back never shortens a wait beyond the delay itself. At most
:data:`MAX_KEYS` keys are kept, the oldest failures dropped first.
"""

import ipaddress
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

FREE_FAILURES = 3
MAX_DELAY = 300.0  # seconds
MAX_KEYS = 4096


def delay_after(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: 0 for the first few, then 1,
    2, 4 … at most :data:`MAX_DELAY`."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(MAX_DELAY, 2.0 ** (failures - FREE_FAILURES))


def client_key(remote: str | None) -> str:
    """The throttle key of a client address: IPv4 as it is, IPv6 by its /64."""
    try:
        address = ipaddress.ip_address((remote or "").split("%")[0])
    except ValueError:
        return "client:unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"client:{address.ipv4_mapped}"
        return f"client:{ipaddress.ip_network(f'{address}/64', strict=False)}"
    return f"client:{address}"


class Throttle:
    """Failure counts by key, in ``path`` (JSON, 0600). Thread-safe."""

    def __init__(self, path: str | os.PathLike[str] | None, clock: Callable[[], float]) -> None:
        self.path = Path(path) if path is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = self._load()

    def _load(self) -> dict[str, tuple[int, float]]:
        if self.path is None:
            return {}
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {
                str(k): (int(v[0]), float(v[1]))
                for k, v in raw.items()
                if isinstance(v, list) and len(v) == 2
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError) as err:
            # A damaged file must not open the door: start every known key over at the
            # longest wait is not possible without keys, so say so and start afresh.
            log.warning("%s cannot be read (%s); failure counts start afresh", self.path, err)
            return {}

    def _save(self) -> None:
        if self.path is None:
            return
        part = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({k: list(v) for k, v in self._counts.items()}, out)
            part.replace(self.path)
        except OSError as err:  # a full or read-only disk: the counts still hold in memory
            log.warning("%s cannot be written (%s)", self.path, err.strerror)

    def wait(self, keys: Iterable[str]) -> float:
        """Seconds until every one of ``keys`` allows another guess (0: now)."""
        now = self._clock()
        longest = 0.0
        with self._lock:
            for key in keys:
                failures, last = self._counts.get(key, (0, 0.0))
                delay = delay_after(failures)
                if delay:
                    left = delay if now < last else last + delay - now
                    longest = max(longest, min(delay, left))
        return max(0.0, longest)

    def failed(self, keys: Iterable[str]) -> int:
        """Count a failure against each key; returns the highest count."""
        now = self._clock()
        highest = 0
        with self._lock:
            for key in keys:
                failures = self._counts.pop(key, (0, 0.0))[0] + 1
                self._counts[key] = (failures, now)  # re-inserted: newest last
                highest = max(highest, failures)
            while len(self._counts) > MAX_KEYS:
                self._counts.pop(next(iter(self._counts)))
            self._save()
        return highest

    def succeeded(self, keys: Iterable[str]) -> None:
        """Forget the failures of ``keys`` (a right guess)."""
        with self._lock:
            changed = [self._counts.pop(key, None) for key in keys]
            if any(c is not None for c in changed):
                self._save()

    def failures(self, key: str) -> int:
        with self._lock:
            return self._counts.get(key, (0, 0.0))[0]
