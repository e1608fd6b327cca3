"""Apprise, imported lazily: its service objects, a send, and the URL checks by its parsing.

    problems = url_problems(["ntfy://nas.lan/doorbell", "ntfyy://x"])
    # ["URL 2: ntfyy: not a service Apprise knows"]
    plugin, warnings = service("ntfy://nas.lan/doorbell", asset())
    ok, reason = send(plugin, title="Doorbell: ring", body="Someone rang at 14:02")

Apprise is imported only when one of these is called: its first URL loads all its 189
services' modules, about 0.3 s and 32 MiB on an x86 PC (``bench/notify_bench.py``);
``import doorbell.notify_apprise`` stays cheap. Apprise's own log lines can carry a URL's
token: they are kept out of the doorbell's log, caught per thread while a call here asks,
and only made safe (:func:`~doorbell.notify_text.load_reason`,
:func:`~doorbell.notify_text.failure_reason`) before anyone sees them.
"""

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from doorbell import notify_text as text
from doorbell.notify_text import NotifyUrlsError, read_url_lines

__all__ = ["asset", "check_urls_file", "send", "service", "url_problems"]


class _Capture(logging.Handler):
    """Apprise's warnings, kept per thread while that thread asks (``start``/``stop``).

    Installed once on the ``apprise`` logger, which stops propagating: its lines may hold
    a URL's token and never reach the doorbell's log. Shared by the notifiers' send
    threads and the caller of :func:`url_problems`; the lock guards ``_by_thread``.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._lock = threading.Lock()
        self._by_thread: dict[int, list[str]] = {}

    def start(self) -> None:
        with self._lock:
            self._by_thread[threading.get_ident()] = []

    def stop(self) -> list[str]:
        with self._lock:
            return self._by_thread.pop(threading.get_ident(), [])

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            kept = self._by_thread.get(record.thread or 0)
            if kept is not None:
                kept.append(record.getMessage())


_capture: _Capture | None = None


def _apprise() -> Any:
    """The ``apprise`` module, imported at first use, its log captured."""
    global _capture
    import apprise

    if _capture is None:
        _capture = _Capture()
        logger = logging.getLogger("apprise")
        logger.addHandler(_capture)
        logger.setLevel(logging.WARNING)
        logger.propagate = False
    return apprise


def asset() -> Any:
    """Apprise's asset: no icon (a URL the phone would fetch, or a file sent along), no
    link to Apprise's site, nothing kept on disk (no persistent store, no keys made)."""
    apprise = _apprise()
    return apprise.AppriseAsset(
        app_id="doorbell",
        app_desc="doorbell",
        app_url="",
        image_url_mask="",
        image_url_logo="",
        image_path_mask="",
        storage_mode="memory",
        pgp_autogen=False,
        pem_autogen=False,
    )


def service(url: str, asset: Any) -> tuple[Any, list[str]]:
    """Apprise's service object for ``url`` (None if it refuses it) and its warnings
    (raw: they may quote the URL; make them safe before showing them)."""
    apprise = _apprise()
    assert _capture is not None
    _capture.start()
    try:
        plugin = apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=True)
    finally:
        warnings = _capture.stop()
    return plugin or None, warnings


def send(plugin: Any, *, title: str, body: str) -> tuple[bool, str]:
    """Send one notice through ``plugin`` (from :func:`service`), blocking: (True, "") or
    (False, the reason made safe, :func:`~doorbell.notify_text.failure_reason`).
    Apprise's services use blocking ``requests``: call it off the event loop."""
    assert _capture is not None  # a plugin exists: Apprise is loaded
    _capture.start()
    try:
        ok = bool(plugin.notify(body=body, title=title))
    finally:
        warnings = _capture.stop()
    return ok, "" if ok else text.failure_reason(warnings)


def _known_schemes() -> set[str]:
    return {s.lower() for s in _apprise().NotificationManager().schemas()}


def url_problems(urls: Sequence[str] | Mapping[int, str]) -> list[str]:
    """What is wrong with each URL, by Apprise's own parsing: [] when all are usable.

    ``urls``: a list (named "URL 1", "URL 2" …) or line number → URL as
    :func:`~doorbell.notify_text.read_url_lines` gives (named "line 3"). Each problem
    names the line and the service (the scheme), and Apprise's reason made safe
    (:func:`~doorbell.notify_text.load_reason`): a URL Apprise refuses, one it takes
    with a warning (an ntfy topic it will ignore), or an ntfy URL without a topic
    (Apprise takes it, then every send fails).
    """
    label, items = (
        ("line", list(urls.items()))
        if isinstance(urls, Mapping)
        else ("URL", list(enumerate(urls, 1)))
    )
    if not items:
        return []
    made, known = asset(), _known_schemes()
    problems = []
    for number, url in items:
        scheme = text.scheme_of(url)
        if not scheme:
            problems.append(f"{label} {number}: not a URL (expected service://…)")
        elif scheme not in known:
            problems.append(f"{label} {number}: {scheme}: not a service Apprise knows")
        else:
            plugin, warnings = service(url, made)
            reason = text.load_reason(warnings, url)
            if plugin is None:
                problems.append(
                    f"{label} {number}: {scheme}: Apprise cannot use it: {reason or 'malformed'}"
                )
            elif getattr(plugin, "topics", None) == []:  # ntfy takes it, then never delivers
                problems.append(
                    f"{label} {number}: {scheme}: no topic to send to "
                    f"(add one: {scheme}://HOST[:PORT]/TOPIC)"
                )
            elif reason:
                problems.append(f"{label} {number}: {scheme}: {reason}")
    return problems


def check_urls_file(path: str | os.PathLike[str]) -> list[str]:
    """Every problem of the URL file at ``path`` for ``doorbell config check``, each
    naming the file and line; [] if it is fine. Never raises for a bad file."""
    try:
        lines = read_url_lines(path)
    except NotifyUrlsError as err:
        return [str(err)]
    if not lines:
        return [f"notify URLs file {os.fspath(path)}: no URLs in it"]
    return [f"notify URLs file {os.fspath(path)} {p}" for p in url_problems(lines)]
