"""Events and the asyncio bus that carries them to whoever listens.

    bus = EventBus(loop)
    sub = bus.subscribe()                 # a bounded queue of its own
    bus.publish_threadsafe(BellPressed(at=time.time()))   # from the camera or GPIO thread
    event = await sub.get()

Each subscriber (a browser tab's SSE stream, the MQTT bridge, the LED) has its
own bounded queue: a slow one loses its oldest events (and counts them), never
slows the recorder or the others. Threads hand events over with
``loop.call_soon_threadsafe``; the bus itself is touched only on the loop.
"""

import asyncio
from dataclasses import dataclass

from doorbell.store import Clip


@dataclass(frozen=True)
class BellPressed:
    at: float  # wall-clock seconds


@dataclass(frozen=True)
class MotionChanged:
    at: float
    active: bool


@dataclass(frozen=True)
class PirChanged:
    at: float
    active: bool


@dataclass(frozen=True)
class ClipStarted:
    """A clip began: ``at`` wall-clock seconds, ``trigger`` bell | motion | pir, ``id``
    the clip's id (16 hex digits; "" when the publisher did not say: the page then shows
    its card without a thumbnail and matches it to the next finished clip)."""

    at: float
    trigger: str
    id: str = ""


@dataclass(frozen=True)
class ClipFinished:
    clip: Clip


@dataclass(frozen=True)
class CameraState:
    at: float
    state: str  # running | reconnecting | stopped
    detail: str = ""


Event = BellPressed | MotionChanged | PirChanged | ClipStarted | ClipFinished | CameraState


class Subscription:
    """One listener's queue. ``dropped`` counts events lost to a full queue."""

    def __init__(self, bus: "EventBus", maxsize: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # the oldest goes: the newest matters more
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._bus.unsubscribe(self)

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Event:
        return await self.get()


class EventBus:
    """Fan-out of events to subscribers. Owned by the event loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int = 100) -> None:
        self._loop = loop
        self._maxsize = maxsize
        self._subscribers: list[Subscription] = []

    def subscribe(self, maxsize: int | None = None) -> Subscription:
        subscription = Subscription(self, maxsize or self._maxsize)
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def publish(self, event: Event) -> None:
        """On the loop's thread: hand ``event`` to every subscriber."""
        for subscription in list(self._subscribers):
            subscription.offer(event)

    def publish_threadsafe(self, event: Event) -> None:
        """From any thread."""
        self._loop.call_soon_threadsafe(self.publish, event)
