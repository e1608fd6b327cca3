"""Home Assistant over MQTT (opt-in): the bell, motion and the last clip's time, told to a
broker the owner runs, never an image.

    bridge = MqttBridge(settings, version=__version__)
    task = asyncio.create_task(bridge.run(bus.subscribe(maxsize=QUEUE_SIZE)))
    bridge.describe()        # "connected to 192.168.1.5:1883" for the status page
    task.cancel()            # a clean stop: availability "offline", then DISCONNECT

What goes on the wire (topics and payloads in :mod:`doorbell.mqtt_topics`): Home
Assistant discovery for three entities, retained and published again on every
(re)connect; availability ``online``/``offline``, retained, with ``offline`` as the
last will, so a crashed or cut-off doorbell turns unavailable; a ring as
``{"event_type": "ring"}`` (not retained: a ring happens once); motion ON/OFF and the
last clip's start time, retained, so Home Assistant knows them after its own restart
(only a clip's whose time is known: none begun before the clock was set).
Motion is ON while the camera's detector or the PIR sensor (when one is wired) says so,
and OFF once both are quiet (:func:`motion_seen`); it is said OFF at start (both start
idle) and again on every reconnect.

The bridge reads its own bounded subscription to the bus, so a broker that is slow or
away costs the recorder nothing: the subscription loses its oldest events and counts them
(``Subscription.dropped``). A ring that waited more than :data:`RING_MAX_AGE` s is not
sent at all (counted in ``late``): Home Assistant would take it for a ring now. An event
whose publishing the connection's loss interrupted is sent again after the reconnect
(QoS 1: at least once). Reconnects back off 1, 2, 4 ... 60 s (``sleep`` is injected).

Errors (refused, DNS, bad credentials, TLS) are one log line each time the state changes
and the state text (:meth:`MqttBridge.describe`); never a traceback or the password. The
password lives in a file (``password_file``), read at each connection attempt, so a
changed password is used from the next reconnect. aiomqtt (and paho-mqtt under it) is
imported only when the bridge runs: ``import doorbell.mqtt`` stays cheap.
"""

import asyncio
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING

from doorbell import mqtt_topics as mt
from doorbell.events import BellPressed, ClipFinished, Event, MotionChanged, PirChanged
from doorbell.mqtt_settings import (
    MqttSettings,
    MqttSettingsError,
    read_password,
    settings_problem,
)

if TYPE_CHECKING:
    import aiomqtt

__all__ = [
    "QUEUE_SIZE",
    "MqttBridge",
    "MqttSettings",
    "MqttSettingsError",
    "describe_error",
    "motion_seen",
    "read_password",
    "settings_problem",
]

log = logging.getLogger(__name__)

QUEUE_SIZE = 64  # events the bridge's own subscription holds while the broker is away
RING_MAX_AGE = 60.0  # seconds: an older ring is not sent (it would read as a ring now)
KEEPALIVE = 30  # seconds between MQTT pings; a silent link is found dead in 1.5x this
TIMEOUT = 10.0  # seconds for the broker's CONNACK or a PUBACK
STOP_TIMEOUT = 1.0  # seconds a clean stop waits to say "offline", and again for DISCONNECT
STABLE_SECONDS = 10.0  # a connection that lasted this long resets the backoff
END_RETRY = 0.5  # seconds between cancellations of a task that swallowed one (_end)

CONNACK_REFUSALS = {  # MQTT 3.1.1 return codes and their MQTT 5 reason codes
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised (check the user name and password)",
    134: "bad user name or password",
    135: "not authorised (check the user name and password)",
    136: "server unavailable",
}
PHRASES = (  # what OS and TLS errors say, in the owner's words
    ("connection refused", "connection refused"),
    ("name or service not known", "host not found (DNS)"),
    ("temporary failure in name resolution", "host not found (DNS)"),
    ("no address associated", "host not found (DNS)"),
    ("nodename nor servname", "host not found (DNS)"),
    ("certificate verify failed", "TLS: the broker's certificate is not trusted"),
    ("wrong version number", "TLS handshake failed (is it a TLS port?)"),
    ("network is unreachable", "network unreachable"),
    ("no route to host", "no route to host"),
    ("timed out", "timed out"),
    ("connection reset", "connection lost"),
    ("broken pipe", "connection lost"),
    ("disconnected during message iteration", "connection lost"),
    ("unexpected disconnection", "connection lost"),
)


def describe_error(err: BaseException, secret: str = "") -> str:
    """A connection error in a few words for the log and the status page: "connection
    refused", "host not found (DNS)", "refused by the broker: bad user name or password",
    "connection lost" ... Never a traceback; ``secret`` (the password) is blotted out
    should any library quote it."""
    text = _describe(err)
    if secret and secret in text:
        text = text.replace(secret, "***")
    return text


def _describe(err: BaseException) -> str:
    if isinstance(err, MqttSettingsError):
        return str(err)
    rc = getattr(err, "rc", None)
    if type(err).__name__ == "MqttConnectError":
        code = getattr(rc, "value", rc)
        if isinstance(code, int) and code in CONNACK_REFUSALS:
            return f"refused by the broker: {CONNACK_REFUSALS[code]}"
        return f"refused by the broker: {str(rc).lower()}"
    cause = err.__cause__
    reason = getattr(cause, "rc", None)
    said = getattr(reason, "value", None)
    if isinstance(said, int) and said > 128:  # a reason the broker gave as it hung up
        return f"connection lost: {str(reason).lower()}"
    low = f"{err} {cause or ''}".lower()
    for needle, words in PHRASES:
        if needle in low:
            return words
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(err)).strip()
    return text or type(err).__name__


class MqttBridge:
    """Events from the bus to a broker, for Home Assistant. See the module's docstring.

    ``password`` overrides ``settings.password_file`` (the demo passes none and no file).
    ``last_clip_at`` (Unix seconds) is the newest clip's start known at start, published
    retained; None leaves what the broker holds. ``clock`` is wall seconds (a ring's age),
    ``monotonic`` measures connections, ``sleep`` waits between attempts.

    ``rings``, ``published`` and ``late`` count rings sent, every message sent, rings too
    old to send."""

    def __init__(
        self,
        settings: MqttSettings,
        *,
        version: str,
        name: str = "Doorbell",
        password: str | None = None,
        last_clip_at: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        problem = settings_problem(settings) or (
            None if settings.device_id else "device_id: is empty"
        )
        if problem or not settings.host:
            raise MqttSettingsError(f"[mqtt] {problem or 'host: is empty'}")
        self.settings = settings
        self.topics = mt.Topics(
            settings.topic_prefix, settings.discovery_prefix, settings.device_id
        )
        self.version = version
        self.name = name
        self._password = password
        self._secret = password or ""
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._moving: dict[str, bool] = {}  # motion source ("camera", "pir") -> active
        self._last_clip = last_clip_at
        self._pending: Event | None = None  # taken from the queue, not yet acknowledged
        self._events: AsyncIterator[Event] | None = None
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        self.where = f"{host}:{settings.port}"
        self.connected = False
        self.state = "not started"
        self._retry_at: float | None = None
        self._logged: str | None = None
        self.rings = 0
        self.published = 0
        self.late = 0

    # -- what it says about itself ----------------------------------------------------

    def describe(self) -> str:
        """One line for the status page: "connected to HOST:PORT", "reconnecting in 8 s:
        connection refused", with the events lost while the broker was away."""
        text = self.state
        if self._retry_at is not None:
            left = max(0, round(self._retry_at - self._monotonic()))
            text = f"reconnecting in {left} s: {self.state}"
        lost = getattr(self._events, "dropped", 0) + self.late
        if lost:
            text += f"; {lost} event{'s' if lost != 1 else ''} not sent (broker away or slow)"
        return text

    def _note(self, state: str, *, connected: bool, retry_in: float | None = None) -> None:
        self.state, self.connected = state, connected
        self._retry_at = None if retry_in is None else self._monotonic() + retry_in
        line = state if connected else f"{self.where}: {state}"
        if line != self._logged:
            self._logged = line
            if connected:
                log.info("mqtt: %s", state)
            else:
                log.warning("mqtt: %s (trying again, 1 s doubling to 60 s)", line)

    # -- run -----------------------------------------------------------------------------

    async def run(self, events: AsyncIterator[Event]) -> None:
        """Forward ``events`` until cancelled (or until ``events`` ends), reconnecting as
        needed. Never raises for the broker's sake: every failure is a state and a retry."""
        self._events = events
        failures = 0
        try:
            while True:
                self.state, self._retry_at = f"connecting to {self.where}", None
                reason, since = await self._attempt(events)
                if reason is None:
                    return
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # an error on the way out
                    raise asyncio.CancelledError
                if since is not None and self._monotonic() - since >= STABLE_SECONDS:
                    failures = 0
                failures += 1
                delay = mt.backoff_delay(failures)
                self._note(reason, connected=False, retry_in=delay)
                await self._sleep(delay)
        finally:
            self.connected, self._retry_at = False, None
            self.state = "stopped"

    async def _attempt(self, events: AsyncIterator[Event]) -> tuple[str | None, float | None]:
        """One connection: (why it ended, or None when ``events`` ended; when it was made)."""
        import aiomqtt

        since = None
        try:
            password = self._password
            if password is None and self.settings.password_file:
                password = read_password(self.settings.password_file)
                self._secret = password
            client = aiomqtt.Client(
                self.settings.host,
                self.settings.port,
                username=self.settings.username or None,
                password=password,
                identifier=f"doorbell-{self.settings.device_id}",
                will=aiomqtt.Will(self.topics.availability, mt.OFFLINE, qos=1, retain=True),
                keepalive=KEEPALIVE,
                timeout=TIMEOUT,
                tls_context=self._tls(),
            )
            async with client:
                since = self._monotonic()
                self._note(f"connected to {self.where}", connected=True)
                failure = await self._serve(client, events)
                if failure is None:
                    await self._say_offline(client)
                    return None, since
                return describe_error(failure, self._secret), since
        except (aiomqtt.MqttError, MqttSettingsError, OSError) as err:
            reason = describe_error(err, self._secret)
            if since is None and reason == "connection lost":
                tls = "true" if self.settings.tls else "false"
                reason = (
                    f"the broker hung up while connecting (is tls = {tls} right for this port?)"
                )
            return reason, since
        except Exception as err:  # a fault of ours or a library's: said, retried, never fatal
            log.error("mqtt: unexpected %s (a bug: please report it)", type(err).__name__)
            return f"unexpected {type(err).__name__}", since

    def _tls(self) -> ssl.SSLContext | None:
        """The broker's certificate checked against ``ca_file`` if given (a broker with a
        certificate of its own), else the system's CAs; its host name checked either way.
        Raises OSError (ssl.SSLError, FileNotFoundError) for a file it cannot use."""
        if not self.settings.tls:
            return None
        return ssl.create_default_context(cafile=self.settings.ca_file or None)

    async def _serve(
        self, client: "aiomqtt.Client", events: AsyncIterator[Event]
    ) -> BaseException | None:
        """Announce, then forward events while a watcher waits for the connection's end.
        Returns what ended it, or None when ``events`` ended. (Two tasks and
        ``asyncio.wait``, not a TaskGroup: Python 3.11's leaves this task marked as being
        cancelled when a child fails while it waits.)"""
        watch = asyncio.ensure_future(self._watch(client))
        work = asyncio.ensure_future(self._forward(client, events))
        both = (watch, work)
        try:
            done, _ = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _end(both)
            await self._say_offline(client)
            raise
        await _end(both)
        failures = [t.exception() for t in both if t in done and not t.cancelled()]
        if any(isinstance(f, _EventsEnded) for f in failures):
            return None
        return next((f for f in failures if f is not None), None) or ConnectionError("ended")

    @staticmethod
    async def _watch(client: "aiomqtt.Client") -> None:
        """Ends (with an MqttError) when the connection does: nothing is subscribed."""
        async for _message in client.messages:
            pass

    async def _forward(self, client: "aiomqtt.Client", events: AsyncIterator[Event]) -> None:
        await self._announce(client)
        while True:
            if self._pending is None:
                try:
                    self._pending = await anext(events)
                except StopAsyncIteration:
                    raise _EventsEnded from None
            await self._deliver(client, self._pending)
            self._pending = None
            _raise_if_cancelled()  # a publish may have swallowed it (see _raise_if_cancelled)

    async def _publish(
        self, client: "aiomqtt.Client", topic: str, payload: str, *, retain: bool
    ) -> None:
        await client.publish(topic, payload, qos=1, retain=retain)
        self.published += 1

    async def _announce(self, client: "aiomqtt.Client") -> None:
        """Discovery, the states, then ``online``: on every (re)connect, all retained."""
        for topic, payload in mt.discovery(self.topics, version=self.version, name=self.name):
            await self._publish(client, topic, payload, retain=True)
        await self._publish(
            client, self.topics.motion, mt.motion_payload(motion_seen(self._moving)), retain=True
        )
        if self._last_clip is not None:
            await self._publish(
                client, self.topics.last_clip, mt.clip_time(self._last_clip), retain=True
            )
        await self._publish(client, self.topics.availability, mt.ONLINE, retain=True)

    async def _deliver(self, client: "aiomqtt.Client", event: Event) -> None:
        if isinstance(event, BellPressed):
            if self._clock() - event.at > RING_MAX_AGE:
                self.late += 1
                return
            await self._publish(client, self.topics.ring, mt.ring_payload(), retain=False)
            self.rings += 1
        elif isinstance(event, MotionChanged | PirChanged):
            was = motion_seen(self._moving)
            self._moving["camera" if isinstance(event, MotionChanged) else "pir"] = event.active
            now = motion_seen(self._moving)
            if now != was:
                await self._publish(client, self.topics.motion, mt.motion_payload(now), retain=True)
        elif isinstance(event, ClipFinished) and not event.clip.time_uncertain:
            # a clip begun before the clock was set has no time to tell (the boot's clock
            # may be weeks out): Home Assistant keeps the last one it was told
            self._last_clip = event.clip.start
            await self._publish(
                client, self.topics.last_clip, mt.clip_time(event.clip.start), retain=True
            )

    async def _say_offline(self, client: "aiomqtt.Client") -> None:
        """A clean stop: ``offline`` before DISCONNECT (the broker sends no will then). A
        broker that does not answer holds the stop for at most 2 x :data:`STOP_TIMEOUT`."""
        import aiomqtt

        client.timeout = STOP_TIMEOUT  # also bounds the DISCONNECT's wait that follows
        with suppress(aiomqtt.MqttError):  # already gone: the broker sends the will instead
            await client.publish(self.topics.availability, mt.OFFLINE, qos=1, retain=True)


def motion_seen(moving: dict[str, bool]) -> bool:
    """Whether Home Assistant's motion sensor is ON: while any source (the camera's
    detector, the PIR sensor) says motion. ``{}`` (nothing said yet) is OFF."""
    return any(moving.values())


def _raise_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop. Python 3.11's
    ``asyncio.wait_for``, which aiomqtt's publish waits through, returns normally when a
    cancellation lands just as what it waits for completes, so a task can carry on
    cancelled and wait for events that never come (CPython gh-86296, fixed in 3.12)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _end(tasks: tuple[asyncio.Future, ...]) -> None:
    """Cancel ``tasks`` and wait until they have ended (their errors are read by the
    caller). A task that swallowed its cancellation is cancelled again every
    :data:`END_RETRY` seconds, so a stop never hangs on one."""
    pending: set[asyncio.Future] = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=END_RETRY)


class _EventsEnded(Exception):
    """The events iterator ended: the bridge stops cleanly."""
