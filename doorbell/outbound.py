"""The owner's opt-in connections out of the house: Home Assistant over MQTT
(:mod:`doorbell.mqtt`) and push notifications (:mod:`doorbell.notify`). Off unless the
config turns them on; with both off nothing here opens a socket (law 4).

    outbound = Outbound(config, clock=time.time)
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
from collections.abc import Callable
from typing import TYPE_CHECKING

from doorbell import __version__
from doorbell.config import Config

if TYPE_CHECKING:
    from doorbell.events import EventBus, Subscription
    from doorbell.mqtt import MqttBridge
    from doorbell.store import ClipStore


def device_id(hostname: str) -> str:
    """The MQTT device id made from a host name: lower case, every run of other characters
    than a-z, 0-9, _ and - one "-", at most 64 characters; "doorbell" if nothing is left."""
    made = re.sub(r"[^a-z0-9_-]+", "-", hostname.lower()).strip("-")[:64].strip("-")
    return made or "doorbell"


class Outbound:
    """The MQTT bridge (when ``config.mqtt.enabled``); see the module."""

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self.mqtt: MqttBridge | None = None
        self._subscriptions: list[Subscription] = []

    def start(
        self, bus: "EventBus", store: "ClipStore", group: asyncio.TaskGroup
    ) -> list[asyncio.Task]:
        """Start what the config turns on, as tasks of ``group``; returns them (the service
        cancels them as it stops). Each task ends only when cancelled."""
        tasks: list[asyncio.Task] = []
        settings = self.config.mqtt
        if settings.enabled:
            from doorbell.mqtt import QUEUE_SIZE, MqttBridge

            if not settings.device_id:
                settings = dataclasses.replace(settings, device_id=device_id(socket.gethostname()))
            newest = store.list(limit=1)
            self.mqtt = MqttBridge(
                settings,
                version=__version__,
                last_clip_at=newest[0].start if newest else None,
                clock=self._clock,
            )
            events = bus.subscribe(maxsize=QUEUE_SIZE)
            self._subscriptions.append(events)
            tasks.append(group.create_task(self.mqtt.run(events), name="mqtt"))
        return tasks

    def status(self) -> dict[str, str | None]:
        """For the status page: each integration's state, None where it is off."""
        return {"mqtt": self.mqtt.describe() if self.mqtt is not None else None}

    def problems(self) -> list[str]:
        """Lines for systemd's STATUS= while an integration is not working."""
        if self.mqtt is not None and not self.mqtt.connected:
            return [f"mqtt {self.mqtt.describe()}"]
        return []

    def close(self) -> None:
        """Leave the bus (the tasks are cancelled by the service)."""
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
