"""What the doorbell says on MQTT, as pure data: topics, Home Assistant discovery payloads,
state payloads, and the reconnect backoff. :mod:`doorbell.mqtt` carries them out.

    topics = Topics(prefix="doorbell", discovery="homeassistant", device_id="frontdoor")
    topics.ring          # "doorbell/frontdoor/ring": {"event_type": "ring"}, not retained
    topics.motion        # "doorbell/frontdoor/motion": ON | OFF, retained
    topics.last_clip     # "doorbell/frontdoor/last_clip": ISO 8601 with offset, retained
    topics.availability  # "doorbell/frontdoor/availability": online | offline, retained
    discovery(topics, version="0.1.0", name="Doorbell")   # [(config topic, payload)]

Discovery follows Home Assistant's MQTT discovery: one retained JSON config a entity on
``<discovery>/<component>/<device_id>/<object_id>/config`` (components ``event``,
``binary_sensor``, ``sensor``), each with the same ``device`` block, so Home Assistant
shows one device with three entities. Field names are those of its MQTT event,
binary sensor and sensor integrations.

Nothing here names or describes a clip beyond the time it started: no image, thumbnail,
clip id or URL ever goes on MQTT (law 4 of DESIGN.md: events, never images).
"""

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

ONLINE = "online"
OFFLINE = "offline"
MOTION_ON = "ON"
MOTION_OFF = "OFF"
RING = "ring"  # the event entity's one event type (device class doorbell)
MODEL = "doorbell"
MANUFACTURER = "doorbell project"

BACKOFF_FIRST = 1.0  # seconds before the first retry; doubled each failure
BACKOFF_MAX = 60.0  # and never more than this

DEVICE_ID = re.compile(r"[a-z0-9_-]{1,64}")
MAX_PREFIX = 128  # characters in a topic prefix


@dataclass(frozen=True)
class Topics:
    """The topics of one device. ``prefix`` and ``discovery`` are topic prefixes of one or
    more levels (``home/doorbell``), ``device_id`` one level of ``[a-z0-9_-]``."""

    prefix: str
    discovery: str
    device_id: str

    def _state(self, name: str) -> str:
        return f"{self.prefix}/{self.device_id}/{name}"

    @property
    def availability(self) -> str:
        return self._state("availability")

    @property
    def ring(self) -> str:
        return self._state("ring")

    @property
    def motion(self) -> str:
        return self._state("motion")

    @property
    def last_clip(self) -> str:
        return self._state("last_clip")

    def config(self, component: str, object_id: str) -> str:
        """A discovery config topic: ``<discovery>/<component>/<device_id>/<object_id>/config``."""
        return f"{self.discovery}/{component}/{self.device_id}/{object_id}/config"


def topic_prefix_problem(value: str) -> str | None:
    """Why ``value`` cannot be a topic prefix, or None. A prefix is one or more levels
    joined by "/", none empty, without the wildcards ``+`` and ``#`` or a NUL, at most
    :data:`MAX_PREFIX` characters."""
    if not value:
        return "is empty"
    if len(value) > MAX_PREFIX:
        return f"is longer than {MAX_PREFIX} characters"
    if any(c in value for c in "+#\0"):
        return "may not contain +, # or NUL (MQTT wildcards)"
    if "" in value.split("/"):
        return 'has an empty level (a leading, trailing or double "/")'
    if value != value.strip():
        return "has leading or trailing spaces"
    return None


def device_id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a device id, or None: 1-64 of a-z, 0-9, "_" and "-"."""
    if not DEVICE_ID.fullmatch(value):
        return "must be 1 to 64 of a-z, 0-9, _ and - (it is part of topics and Home Assistant ids)"
    return None


def device_block(topics: Topics, *, version: str, name: str) -> dict:
    """The ``device`` block every entity carries: Home Assistant groups them by it."""
    return {
        "identifiers": [f"doorbell_{topics.device_id}"],
        "name": name,
        "model": MODEL,
        "manufacturer": MANUFACTURER,
        "sw_version": version,
    }


def discovery(topics: Topics, *, version: str, name: str) -> list[tuple[str, str]]:
    """Every discovery config as ``(topic, JSON payload)``, to be published retained on
    each (re)connect: the bell as an ``event`` entity (device class ``doorbell``, event
    type ``ring``), motion as a ``binary_sensor`` (device class ``motion``, ON/OFF), and
    the last clip's start as a ``sensor`` (device class ``timestamp``)."""
    common: dict[str, object] = {
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "qos": 1,
        "device": device_block(topics, version=version, name=name),
        "origin": {"name": "doorbell", "sw_version": version},
    }
    uid = f"doorbell_{topics.device_id}"
    entities: list[tuple[str, dict[str, object]]] = [
        (
            topics.config("event", "ring"),
            {
                "name": "Ring",
                "unique_id": f"{uid}_ring",
                "state_topic": topics.ring,
                "device_class": "doorbell",
                "event_types": [RING],
            },
        ),
        (
            topics.config("binary_sensor", "motion"),
            {
                "name": "Motion",
                "unique_id": f"{uid}_motion",
                "state_topic": topics.motion,
                "device_class": "motion",
                "payload_on": MOTION_ON,
                "payload_off": MOTION_OFF,
            },
        ),
        (
            topics.config("sensor", "last_clip"),
            {
                "name": "Last clip",
                "unique_id": f"{uid}_last_clip",
                "state_topic": topics.last_clip,
                "device_class": "timestamp",
                "icon": "mdi:cctv",
            },
        ),
    ]
    return [(topic, json.dumps(entity | common, sort_keys=True)) for topic, entity in entities]


def ring_payload() -> str:
    """The bell's event: ``{"event_type": "ring"}`` (no time, no clip, nothing else)."""
    return json.dumps({"event_type": RING})


def motion_payload(active: bool) -> str:
    return MOTION_ON if active else MOTION_OFF


def clip_time(at: float, tz: tzinfo | None = None) -> str:
    """A clip's start (Unix seconds) as ISO 8601 to the second with its UTC offset, in
    ``tz`` (the system's local zone when None): ``2026-11-30T14:02:07+01:00``."""
    moment = datetime.fromtimestamp(at, UTC)
    local = moment.astimezone(tz) if tz is not None else moment.astimezone()
    return local.isoformat(timespec="seconds")


def backoff_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row (1 or more): 1, 2, 4,
    8, 16, 32, then 60 s each time."""
    if failures < 1:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(failures - 1, 16))
