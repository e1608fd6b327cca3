"""The ``[mqtt]`` settings and their checks, as plain data and pure functions (no MQTT
library): the config and ``doorbell config check`` use them without loading the bridge.

    settings_problem(MqttSettings(enabled=True, host="broker.lan", device_id="frontdoor"))
    read_password("/etc/doorbell/mqtt-password")   # the one line; errors name the file

The password never sits in the config: ``password_file`` names a file that holds it.
"""

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from doorbell import mqtt_topics as mt
from doorbell.errors import DoorbellError

MAX_PASSWORD_BYTES = 4096


class MqttSettingsError(DoorbellError, ValueError):
    """The MQTT settings or the password file cannot be used; the message names which."""


@dataclass(frozen=True)
class MqttSettings:
    """The ``[mqtt]`` section. The password is never here: ``password_file`` names a file
    holding it (one line). ``device_id`` is 1-64 of ``[a-z0-9_-]``, part of every topic
    and Home Assistant id; the config derives it when the owner leaves it empty."""

    enabled: bool = False
    host: str = ""
    port: int = 1883
    username: str = ""
    password_file: str = ""
    tls: bool = False
    ca_file: str = ""  # PEM certificates to trust for the broker instead of the system's
    topic_prefix: str = "doorbell"
    discovery_prefix: str = "homeassistant"
    device_id: str = ""


def host_problem(host: str) -> str | None:
    """Why ``host`` is not a host name or IP address alone, or None."""
    if not host:
        return "is empty"
    if "://" in host:
        return "is a URL: give the host name alone (no mqtt://), the port in port, tls in tls"
    if any(c.isspace() for c in host) or any(c in host for c in "/@?#"):
        return "is not a host name or IP address"
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            return "has a ':': give the port in port"
    if len(host) > 253:
        return "is longer than 253 characters"
    return None


def settings_problem(s: MqttSettings) -> str | None:
    """The first thing wrong with ``s`` as ``"KEY: reason"``, or None; pure (the password
    file is not read: see :func:`read_password`). A host is needed only when enabled;
    an empty ``device_id`` is left for the config to derive."""
    if s.enabled or s.host:
        problem = host_problem(s.host)
        if problem:
            return f"host: {problem}{' (MQTT is enabled)' if not s.host else ''}"
    if isinstance(s.port, bool) or not isinstance(s.port, int) or not 1 <= s.port <= 65535:
        return f"port: must be a whole number from 1 to 65535, not {s.port!r}"
    if len(s.username) > 256 or any(c in s.username for c in "\0\r\n"):
        return "username: must be one line of at most 256 characters"
    if s.password_file:
        if not Path(s.password_file).is_absolute():
            return f"password_file: must be an absolute path, not {s.password_file!r}"
        if not s.username:
            return "password_file: a password needs a username"
    if s.ca_file:
        if not Path(s.ca_file).is_absolute():
            return f"ca_file: must be an absolute path, not {s.ca_file!r}"
        if not s.tls:
            return "ca_file: a certificate to trust needs tls = true"
    for key, value in (("topic_prefix", s.topic_prefix), ("discovery_prefix", s.discovery_prefix)):
        problem = mt.topic_prefix_problem(value)
        if problem:
            return f"{key}: {problem}"
    if s.device_id:
        problem = mt.device_id_problem(s.device_id)
        if problem:
            return f"device_id: {problem}"
    return None


def read_password(path: str) -> str:
    """The password in the file at ``path``: its one line, without the line end.

    Raises :class:`MqttSettingsError` naming the file and why (missing, unreadable, empty,
    more than one line, not UTF-8, over 4 KiB), never quoting what it holds."""
    where = f"MQTT password file {path}"
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_PASSWORD_BYTES + 1)
    except FileNotFoundError:
        raise MqttSettingsError(f"{where}: not found") from None
    except PermissionError:
        raise MqttSettingsError(
            f"{where}: permission denied (the service's user must be able to read it)"
        ) from None
    except OSError as err:
        raise MqttSettingsError(f"{where}: {err.strerror or type(err).__name__}") from None
    if len(data) > MAX_PASSWORD_BYTES:
        raise MqttSettingsError(f"{where}: longer than {MAX_PASSWORD_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MqttSettingsError(f"{where}: not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise MqttSettingsError(f"{where}: empty")
    if any(c in text for c in "\r\n\0"):
        raise MqttSettingsError(f"{where}: more than one line")
    return text
