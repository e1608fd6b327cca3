"""The owner's opt-in connections out of the house: Home Assistant over MQTT
(:mod:`doorbell.mqtt`) and push notifications (:mod:`doorbell.notify`). Off unless the
config turns them on; with both off nothing here opens a socket (law 4).

    outbound = Outbound(config, clock=time.time, base_url="http://doorbell.lan:8443/")
    tasks = outbound.start(bus, store, group)   # in the service's TaskGroup
    outbound.status()                          # {"mqtt": "connected to …", "notify": None}
    outbound.problems()                        # lines for systemd's STATUS= while failing
    outbound.close()

Each reads the event bus through a bounded subscription of its own, so a broker or a
notification service that is slow or away loses its oldest events (counted) and never
slows the recorder, the pages or the other.
"""

import asyncio
import dataclasses
import re
import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from doorbell import __version__
from doorbell.config import Config

if TYPE_CHECKING:
    from doorbell.events import EventBus, Subscription
    from doorbell.mqtt import MqttBridge
    from doorbell.notify import Notifier
    from doorbell.store import ClipStore

NOTIFY_QUEUE = 64  # events the notifier's own subscription holds (it keeps its own queues)


def device_id(hostname: str) -> str:
    """The MQTT device id made from a host name: lower case, every run of other characters
    than a-z, 0-9, _ and - one "-", at most 64 characters; "doorbell" if nothing is left."""
    made = re.sub(r"[^a-z0-9_-]+", "-", hostname.lower()).strip("-")[:64].strip("-")
    return made or "doorbell"


def page_address(url: str, hostname: str | None = None) -> str:
    """The pages' address as a phone on the LAN reaches it: a wildcard listen address
    (0.0.0.0, ::) becomes this device's ``hostname.local`` (mDNS, as Raspberry Pi OS
    announces it)."""
    host = f"{hostname or socket.gethostname()}.local"
    return url.replace("://0.0.0.0:", f"://{host}:").replace("://[::]:", f"://{host}:")


class Outbound:
    """The MQTT bridge (when ``config.mqtt.enabled``) and the notifier (when
    ``config.notify.enabled``, to the URLs in its file, or to ``notify_urls`` given
    outright: ``doorbell demo --notify URL``); see the module. ``base_url``: the pages'
    address, in a notice only if ``[notify] link`` is on."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        notify_urls: Sequence[str] = (),
        base_url: str = "",
    ) -> None:
        self.config = config
        self._clock = clock
        self._notify_urls = tuple(notify_urls)
        self.base_url = base_url
        self.mqtt: MqttBridge | None = None
        self.notifier: Notifier | None = None
        self._subscriptions: list[Subscription] = []

    def start(
        self, bus: "EventBus", store: "ClipStore", group: asyncio.TaskGroup
    ) -> list[asyncio.Task]:
        """Start what the config turns on, as tasks of ``group``; returns them (the service
        cancels them as it stops). Each task ends only when cancelled.

        Raises NotifyUrlsError (naming the file and line, never a token) if the URLs of
        an enabled notifier cannot be used."""
        tasks: list[asyncio.Task] = []
        if self.config.notify.enabled or self._notify_urls:
            tasks += self._start_notifier(bus, group)
        settings = self.config.mqtt
        if settings.enabled:
            from doorbell.mqtt import QUEUE_SIZE, MqttBridge

            if not settings.device_id:
                settings = dataclasses.replace(settings, device_id=device_id(socket.gethostname()))
            newest = store.list(limit=1)  # its time told only if known (see MqttBridge)
            known = newest[0].start if newest and not newest[0].time_uncertain else None
            self.mqtt = MqttBridge(
                settings,
                version=__version__,
                last_clip_at=known,
                clock=self._clock,
            )
            events = bus.subscribe(maxsize=QUEUE_SIZE)
            self._subscriptions.append(events)
            tasks.append(group.create_task(self.mqtt.run(events), name="mqtt"))
        return tasks

    def _start_notifier(self, bus: "EventBus", group: asyncio.TaskGroup) -> list[asyncio.Task]:
        from doorbell import clock as clocks
        from doorbell.notify import Notifier, read_urls

        settings = self.config.notify
        if self._notify_urls and not settings.enabled:
            settings = dataclasses.replace(settings, enabled=True)
        urls = list(self._notify_urls) or read_urls(settings.urls_file)
        self.notifier = Notifier(
            settings,
            urls,
            clock=self._clock,
            sleep=asyncio.sleep,
            base_url=self.base_url,
            synchronised=lambda: clocks.read().synchronised,
        )
        events = bus.subscribe(maxsize=NOTIFY_QUEUE)
        self._subscriptions.append(events)
        return [
            group.create_task(self.notifier.run(), name="notify"),
            group.create_task(self.notifier.follow(events), name="notify-events"),
        ]

    def status(self) -> dict[str, str | None]:
        """For the status page: each integration's state, None where it is off."""
        return {
            "mqtt": self.mqtt.describe() if self.mqtt is not None else None,
            "notify": self.notifier.describe() if self.notifier is not None else None,
        }

    def problems(self) -> list[str]:
        """Lines for systemd's STATUS= while an integration is not working."""
        lines = []
        if self.mqtt is not None and not self.mqtt.connected:
            lines.append(f"mqtt {self.mqtt.describe()}")
        if self.notifier is not None and self.notifier.failing:
            lines.append(f"notify {self.notifier.describe()}")
        return lines

    def close(self) -> None:
        """Leave the bus (the tasks are cancelled by the service)."""
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
