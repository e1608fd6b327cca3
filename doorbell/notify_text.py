"""What a push notification says, and the owner's file of Apprise URLs: pure functions.

    title, body = notice_text("ring", at=1_764_507_720.0, tz=ZoneInfo("Europe/Berlin"))
    # ("Doorbell: ring", "Someone rang at 14:02")
    lines = read_url_lines(Path("/etc/doorbell/notify.urls"))   # {3: "ntfy://…", 5: "…"}
    backoff(3)                                                   # 8.0 seconds

Nothing here imports Apprise: ``doorbell config check`` and the notifier share these,
and the checks that need Apprise's own parsing live in :mod:`doorbell.notify_apprise`.

The URL file holds secrets (tokens, passwords): it must be the service user's alone
(no bit of ``mode & 0o077``) unless it is empty. Every message here names the file
and the line, never what the line says.
"""

import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from doorbell.errors import DoorbellError

if TYPE_CHECKING:
    from doorbell.events import Event

Kind = Literal["ring", "motion"]
RING: Kind = "ring"
MOTION: Kind = "motion"

BACKOFF_FIRST = 2.0  # seconds before the first retry; doubled each time
BACKOFF_MAX = 300.0  # never more than 5 minutes between tries
TRIES = 10  # sends of one notice before it is given up: about 13.5 min of retries
MAX_URLS = 32  # URLs in the file
MAX_FILE_BYTES = 64 * 1024

MOTION_QUIET = 60.0  # seconds: no motion notice this soon after a ring or a motion notice
TITLES: dict[Kind, str] = {RING: "Doorbell: ring", MOTION: "Doorbell: motion"}
SCHEME = re.compile(r"[a-z][a-z0-9+.-]{0,31}")
LIST_SPLIT = re.compile(r"[\s,;|+/]+")  # how Apprise's parse_list splits a value
URL_LINE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://\S+")

# What a ring and a motion notice ask of services that can tell them apart, added to the
# owner's URL unless it sets the parameter itself. ntfy: a ring is priority "high" (the
# Android app pops it up and sounds), tagged "bell" (shown as 🔔); motion keeps the
# default priority, tagged "walking" (🚶). Each ntfy message is its own notification: a
# later one never replaces an earlier one. Gotify: a ring is priority 8 (high), motion 5.
KIND_PARAMS: dict[str, dict[Kind, dict[str, str]]] = {
    "ntfy": {RING: {"priority": "high", "tags": "bell"}, MOTION: {"tags": "walking"}},
    "gotify": {RING: {"priority": "high"}, MOTION: {"priority": "normal"}},
}
ALIASES = {"ntfys": "ntfy", "gotifys": "gotify"}
# Apprise paces each service object at one request per 5.5 s (cloud APIs' limits), so a
# second ring, or a retry, would wait up to 5.5 s in the send thread. ntfy and Gotify
# servers (usually the owner's own; ntfy allows a burst of 60 requests) are not paced.
UNPACED = {"ntfy", "ntfys", "gotify", "gotifys"}
OWNER_KEYS = {"tags": ("tags", "xtags"), "priority": ("priority",)}


@dataclass(frozen=True)
class NotifySettings:
    """The ``[notify]`` section: what is pushed, and the file of the URLs it goes to."""

    enabled: bool = False
    urls_file: str = ""  # absolute path: Apprise URLs, one a line, # comments; mode 600
    bell: bool = True  # a notice for each ring
    motion: bool = False  # a notice when motion starts (at most one a minute, none after a ring)
    link: bool = False  # add the doorbell's page address to the text


def settings_problem(s: NotifySettings) -> str | None:
    """The first thing wrong with ``s`` as ``"KEY: reason"``, or None; pure (the file
    itself is checked by :func:`doorbell.notify_apprise.check_urls_file`)."""
    if s.enabled and not s.urls_file:
        return "urls_file: needed when notify is enabled (a file of Apprise URLs)"
    if s.urls_file and not Path(s.urls_file).is_absolute():
        return f"urls_file: must be an absolute path, not {s.urls_file!r}"
    return None


class NotifyUrlsError(DoorbellError, ValueError):
    """The file of notification URLs cannot be used: the message names the file and line."""


def notice_text(
    kind: Kind, at: float | None, *, tz: tzinfo | None = None, link: str = ""
) -> tuple[str, str]:
    """The title and body of a notice about ``kind`` at ``at`` (wall-clock seconds).

    The time is local (``tz``; None: the system's zone), 24 h, to the minute; ``at``
    None (the clock is not set yet) leaves it out: "Someone rang". ``link`` (the
    doorbell's page, only if the owner turned links on) goes on a line of its own.
    Text only: never an image, a thumbnail or a clip id.
    """
    body = "Someone rang" if kind == RING else "Motion at the door"
    if at is not None:
        body += f" at {datetime.fromtimestamp(at, tz):%H:%M}"
    if link:
        body += f"\n{link}"
    return TITLES[kind], body


@dataclass(frozen=True)
class Notice:
    """One notification: what it is about, when that happened, what it says."""

    kind: Kind
    at: float  # wall-clock seconds of the event
    title: str
    body: str


def wants_notice(
    event: "Event", *, bell: bool, motion: bool, last_ring: float | None, last_motion: float | None
) -> Kind | None:
    """What notice, if any, ``event`` deserves, given what the owner wants pushed.

    A ring for each press if ``bell``; if ``motion``, a motion notice when camera motion
    or the PIR turns on, unless a ring or a motion notice was less than
    :data:`MOTION_QUIET` seconds before (a visitor who rang was announced already).
    """
    from doorbell.events import BellPressed, MotionChanged, PirChanged  # loaded by then

    if isinstance(event, BellPressed):
        return RING if bell else None
    if isinstance(event, MotionChanged | PirChanged) and event.active and motion:
        recent = [t for t in (last_ring, last_motion) if t is not None]
        if any(0 <= event.at - t < MOTION_QUIET for t in recent):
            return None
        return MOTION
    return None


def to_drop(waiting: list[Kind], new: Kind, bound: int) -> int | None:
    """Which notice goes when ``new`` arrives at a queue holding ``waiting`` (oldest first).

    None: there is room. Else the index of the oldest motion notice; if there is none,
    ``-1`` (the new one) for a motion notice, ``0`` (the oldest ring) for a ring: a ring
    is kept over motion, and a newer ring over an older one.
    """
    if len(waiting) < bound:
        return None
    oldest_motion = next((i for i, kind in enumerate(waiting) if kind == MOTION), None)
    if oldest_motion is not None:
        return oldest_motion
    return -1 if new == MOTION else 0


def backoff(attempt: int) -> float:
    """Seconds to wait after failed send number ``attempt`` (1, 2, …): 2, 4, 8 … 300."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(attempt - 1, 16))


def scheme_of(url: str) -> str:
    """The service's scheme of ``url`` ("ntfys"), lower case; "" if it has none."""
    head, sep, _ = url.partition("://")
    head = head.lower()
    return head if sep and SCHEME.fullmatch(head) else ""


def kind_url(url: str, kind: Kind) -> str:
    """``url`` with what tells a ``kind`` notice apart on its service (see ``KIND_PARAMS``).

    A parameter the owner set in the URL stays as they set it. Services not listed get
    the URL unchanged: the title tells a ring from motion there.
    """
    params = KIND_PARAMS.get(ALIASES.get(scheme_of(url), scheme_of(url)), {}).get(kind, {})
    query = {key.lower() for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    extra = [
        f"{key}={value}"
        for key, value in params.items()
        if not query & set(OWNER_KEYS.get(key, (key,)))
    ]
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


def read_url_lines(path: str | os.PathLike[str]) -> dict[int, str]:
    """The URLs of the file at ``path``, by line number (1-based).

    One URL a line; blank lines and lines starting with ``#`` are skipped.

    Raises:
        NotifyUrlsError: the file is missing, unreadable, not a regular file, over 64 KiB,
            not UTF-8, readable or writable by group or others while not empty, holds more
            than 32 URLs, or has a line that is not one ``service://…`` URL. The message
            names the file and the line number, never the line's text.
    """
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NotifyUrlsError(f"notify URLs file {name}: not found") from None
    except OSError as err:
        raise NotifyUrlsError(f"notify URLs file {name}: cannot open ({err.strerror})") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotifyUrlsError(f"notify URLs file {name}: not a regular file")
        if info.st_size and info.st_mode & 0o077:
            raise NotifyUrlsError(
                f"notify URLs file {name} can be read or changed by others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); it holds secrets: make it the "
                f"doorbell user's alone, e.g. chmod 600 {name}"
            )
        try:
            data = file.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise NotifyUrlsError(
                f"notify URLs file {name}: cannot read ({err.strerror})"
            ) from None
    if len(data) > MAX_FILE_BYTES:
        raise NotifyUrlsError(f"notify URLs file {name}: over {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = data[: err.start].count(b"\n") + 1
        raise NotifyUrlsError(f"notify URLs file {name} line {bad}: not UTF-8 text") from None
    urls: dict[int, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not URL_LINE.fullmatch(line):
            what = "more than one word" if len(line.split()) > 1 else "not a URL"
            raise NotifyUrlsError(
                f"notify URLs file {name} line {number}: {what} (one service://… URL a line, "
                "# for comments)"
            )
        urls[number] = line
    if len(urls) > MAX_URLS:
        raise NotifyUrlsError(f"notify URLs file {name}: {len(urls)} URLs, at most {MAX_URLS}")
    return urls


def read_urls(path: str | os.PathLike[str]) -> list[str]:
    """The URLs of the file at ``path`` in order (see :func:`read_url_lines`)."""
    return list(read_url_lines(path).values())


def secret_parts(url: str) -> list[str]:
    """Every part of ``url`` that may be a secret, longest first (3 characters or more),
    as written, percent-decoded and split as Apprise splits lists (spaces, commas …):
    user, password, host, port, path segments, query values and fragment. Only the scheme is never one: Apprise puts tokens where a host
    would be (``pover://USER_KEY@APP_TOKEN``, ``tgram://BOT_TOKEN/CHAT``)."""
    rest = url.partition("://")[2]
    netloc, _, tail = rest.partition("/")
    path, _, fragment = tail.partition("#")
    path, _, query = path.partition("?")
    parts = [*re.split(r"[:@]", netloc), *path.split("/"), fragment]
    parts += [value for _, value in parse_qsl(query, keep_blank_values=True)]
    parts += re.split(r"[&=]", query)
    words = [w for part in parts for p in (part, unquote(part)) for w in (p, *LIST_SPLIT.split(p))]
    found = {w for w in words if len(w) >= 3}
    return sorted(found, key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """``text`` with every secret part of ``url`` (:func:`secret_parts`) replaced by ``***``."""
    for part in secret_parts(url):
        text = text.replace(part, "***")
    return text


def load_reason(messages: list[str], url: str) -> str:
    """Apprise's warnings about loading ``url``, made safe to show: every URL in them cut
    out ("Could not load Gotify URL: gotify://…"), every secret part of ``url`` replaced
    by ``***`` (:func:`secret_parts`), and Apprise's own half-masked secrets ("p...4")
    too. Joined with "; "; "" if nothing is left."""
    reasons = []
    for message in messages:
        message = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S*", "", message)
        message = re.sub(r"\S*\.\.\.\S*", "***", redact(message, url))
        message = re.sub(r"\s+", " ", message).strip(" :.")
        if message and message not in reasons:
            reasons.append(message)
    return "; ".join(reasons)


def failure_reason(messages: list[str]) -> str:
    """A short reason for a failed send, from Apprise's warnings about it.

    "HTTP 500" (Apprise's ``error=500``; ntfy's five-digit codes such as 50001 are
    HTTP x 100 + n), "cannot connect", "timed out", or "failed". Never the messages'
    own text, which may hold a URL with its token.
    """
    text = " ".join(messages)
    codes = re.findall(r"error=(\d{3,5})\b", text)
    if codes:
        return f"HTTP {codes[-1][:3]}"
    lowered = text.lower()
    if "timed out" in lowered or "timeout" in lowered:
        return "timed out"
    if "connection" in lowered or "socket" in lowered:
        return "cannot connect"
    return "failed"


def url_host(url: str) -> str:
    """The host ``url`` names ("nas.lan", "192.168.1.5", "::1"), lower case; "" if none.

    For a self-hosted service (``ntfy://nas.lan/door``, ``gotify://…``, ``json://…``)
    this is the one host the doorbell connects to. A cloud service's URL names no host
    of its own (``ntfy://topic`` goes to ntfy.sh, ``pover://…`` to Pushover's API): this
    then returns what stands in the host's place, which is not where the send goes.
    """
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
