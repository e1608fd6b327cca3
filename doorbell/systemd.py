"""systemd's notify protocol, without a dependency: READY, STATUS, WATCHDOG, STOPPING.

    notifier = Notifier.from_environment()     # does nothing outside systemd
    notifier.ready("camera running")
    notifier.status("camera lost: reconnecting in 4 s")
    if healthy: notifier.watchdog()            # every notifier.watchdog_interval seconds
    notifier.stopping()

Under ``Type=notify`` systemd passes ``NOTIFY_SOCKET``: an AF_UNIX datagram
socket, a path or (starting with ``@``) an abstract name. Each message is
``KEY=value`` lines in one datagram. With ``WatchdogSec=`` it also passes
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, when meant for this process only);
the service must send ``WATCHDOG=1`` more often than that, or systemd kills
and restarts it. Sending never raises: a doorbell must not stop because its
supervisor went away; a failure is logged once.
"""

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def socket_address(value: str) -> str | bytes | None:
    """``NOTIFY_SOCKET`` as an address for ``sendto``: a path, or an abstract name."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock and other forms: not on a Pi


def watchdog_seconds(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout systemd set for this process, or None if there is none."""
    usec = env.get("WATCHDOG_USEC", "")
    owner = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid):
        return None  # meant for another process (we are a child of the service's main one)
    return int(usec) / 1_000_000


class Notifier:
    """Messages to systemd's notify socket; every method is a no-op without one."""

    def __init__(self, address: str | bytes | None, watchdog: float | None = None) -> None:
        self.address = address
        self.watchdog_timeout = watchdog
        self._failed = False
        self._last_status: str | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> "Notifier":
        env = os.environ if env is None else env
        address = socket_address(env.get("NOTIFY_SOCKET", ""))
        return cls(address, watchdog_seconds(env, os.getpid()) if address else None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """How often to ping: half the timeout, as systemd advises."""
        return None if self.watchdog_timeout is None else self.watchdog_timeout / 2

    def send(self, **fields: str) -> bool:
        """One datagram of ``KEY=value`` lines; True if it was sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self.address)
        except OSError as err:
            if not self._failed:
                log.warning("systemd notify socket: %s", err.strerror or err)
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> bool:
        self._last_status = status
        return self.send(READY="1", STATUS=status)

    def status(self, text: str) -> bool:
        """Tell systemd what the service is doing (``systemctl status`` shows it); only changes."""
        if text == self._last_status:
            return False
        self._last_status = text
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def stopping(self) -> bool:
        return self.send(STOPPING="1", STATUS="stopping: finishing the clip being recorded")
