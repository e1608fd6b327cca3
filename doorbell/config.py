"""Configuration: a TOML file into frozen, validated settings.

The annotated ``default.toml`` beside this module is both the documentation
and the schema: its keys are the only keys, its values the defaults (and so
the types), and the comment at the end of each key's line gives the range
("0 to 30 seconds"), the choices ("one of off, trigger, confirm"), or the kind
("polygons", "host:port"). A key commented out there is optional: not set
unless the owner sets it.

    config = load_config("/etc/doorbell/doorbell.toml")   # or ConfigError
    config.pipeline.policy.pre_roll, config.storage.data_dir, config.web.listen

Unknown sections and keys, wrong types and out-of-range values are errors that
name the file, the key and what is wrong (``doorbell.toml: [motion] threshold:
must be 1 to 254, got 300``); nothing is silently ignored. The settings
classes live here, so every part depends on this module and it only on
:mod:`doorbell.config_schema` (the schema and the checks of one value).
"""

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from doorbell.config_schema import (
    check_polygons,
    check_value,
    default_text,
    is_loopback,
    schema,
    shown_name,
    shown_value,
    split_listen,
    validate,
)
from doorbell.errors import DoorbellError
from doorbell.mqtt_settings import MqttSettings, settings_problem
from doorbell.notify_text import NotifySettings
from doorbell.notify_text import settings_problem as notify_problem

__all__ = [
    "DEFAULT_PATH",
    "CameraSettings",
    "Config",
    "ConfigError",
    "GpioSettings",
    "MotionSettings",
    "PipelineSettings",
    "Policy",
    "StorageSettings",
    "WebSettings",
    "check_polygons",
    "check_value",
    "default_text",
    "is_loopback",
    "load",
    "load_config",
    "parse",
    "schema",
    "shown_name",
    "shown_value",
    "split_listen",
]

if TYPE_CHECKING:
    pass

DEFAULT_PATH = "/etc/doorbell/doorbell.toml"

# -- the settings ------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """[trigger]: when to record (see ``doorbell.trigger``)."""

    pre_roll: float = 5.0
    pre_roll_fps: float = 0.0  # frames a second kept while nothing is recorded; 0: all
    post_roll: float = 10.0
    max_clip: float = 120.0
    motion_starts: bool = True
    pir: Literal["off", "trigger", "confirm"] = "off"

    def __post_init__(self) -> None:
        validate(self, "trigger")
        if 0 < self.pre_roll_fps < 1:  # 0.01 kept no frame of a 5 s pre-roll
            raise ValueError(
                f"pre_roll_fps must be 0 (every frame) or 1 to 60, got {self.pre_roll_fps:g}"
            )
        if self.max_clip <= self.pre_roll:
            raise ValueError("max_clip must be longer than pre_roll")


@dataclass(frozen=True)
class MotionSettings:
    """[motion]: the detector's tuning (see ``doorbell.motion``)."""

    threshold: int = 25  # grey levels a pixel must differ from the background
    background_rate: float = 0.05  # how fast still pixels update the background
    ghost_rate: float = 0.005  # how fast moving pixels fade into it
    nuisance_rate: float = 0.02  # how fast the nuisance map learns
    nuisance_level: float = 0.1  # pixels moving more often than this are ignored
    min_area: float = 0.005  # the largest blob, as a fraction of the frame
    min_frames: int = 2  # frames running with motion before it starts
    quiet_frames: int = 10  # frames running without before it stops
    lighting_change: float = 0.6  # fraction of the frame changed at once: a lighting change
    warmup_frames: int = 30  # after a start or reset, frames spent learning before any motion

    def __post_init__(self) -> None:
        validate(self, "motion")


@dataclass(frozen=True)
class PipelineSettings:
    policy: Policy = field(default_factory=Policy)
    motion: MotionSettings = field(default_factory=MotionSettings)
    masks: tuple = ()  # [privacy] masks: polygons, relative coordinates
    zones: tuple = ()  # [motion] zones (empty: the whole frame)
    keyframe_interval: float = 1.0
    thumbnail_quality: int = 80


@dataclass(frozen=True)
class StorageSettings:
    data_dir: str = "/var/lib/doorbell"
    max_age_days: int = 30
    quota_gb: float = 0.0  # 0: no quota
    min_free_mb: int = 500

    def __post_init__(self) -> None:
        validate(self, "storage")


CAMERA_BACKENDS = ("picamera2", "opencv", "synthetic")

# What the Pi's hardware H.264 encoder (Pi 4, Pi 3, Zero 2 W) takes: 32 to 1920 pixels a
# side (the bcm2835-codec driver's MIN_W/H and MAX_W/H_CODEC) and at most 8192 16x16
# macroblocks a picture (H.264 level 4's largest frame; picamera2 asks for level 4 to 4.2).
HARDWARE_SIDES = (32, 1920)
HARDWARE_MACROBLOCKS = 8192


def hardware_encoder_problem(width: int, height: int) -> str | None:
    """Why the Pi's hardware H.264 encoder cannot take ``width`` x ``height`` pixels, or None.

    ``(1920, 1080)`` fits (8160 macroblocks); ``(2592, 1944)`` and ``(1920, 1920)`` do not."""
    low, high = HARDWARE_SIDES
    blocks = -(-width // 16) * -(-height // 16)
    if low <= width <= high and low <= height <= high and blocks <= HARDWARE_MACROBLOCKS:
        return None
    return (
        f"width and height {width}x{height}: the Pi's hardware H.264 encoder (encoder = "
        f'"auto" on a Pi 4, 3 or Zero 2 W) takes {low} to {high} pixels a side and '
        f"{HARDWARE_MACROBLOCKS} macroblocks of 16x16 a picture, such as 1920x1080 or "
        '1080x1920; choose such a size, or set encoder = "libav" (the CPU encoder)'
    )


@dataclass(frozen=True)
class CameraSettings:
    backend: str = "picamera2"
    source: str = ""  # opencv: a video file, a webcam index or a URL
    width: int = 1280
    height: int = 720
    fps: float = 15.0
    encoder: str = "auto"  # picamera2: auto | hardware | libav
    loop: bool = True  # opencv: play a file again from the start when it ends
    rotation: int = 0  # degrees clockwise: 0, 90, 180, 270 (see camera.transform)
    hflip: bool = False  # then mirror left to right, as the turned picture is seen
    vflip: bool = False  # then mirror top to bottom

    def __post_init__(self) -> None:
        validate(self, "camera")
        if self.backend == "opencv" and not self.source:
            raise ValueError("the opencv backend needs a source (a file, webcam index or URL)")
        hardware = self.backend == "picamera2" and self.encoder != "libav"  # auto: if any
        quarter = self.rotation in (90, 270)  # turned on the CPU: the Pi's encoder is not used
        if quarter and self.backend == "picamera2" and self.encoder == "hardware":
            raise ValueError(
                f"rotation {self.rotation}: a Pi camera turned a quarter is turned and encoded "
                'on the CPU; encoder = "hardware" cannot be had with it (use "auto")'
            )
        if (
            hardware
            and not quarter
            and (problem := hardware_encoder_problem(self.width, self.height))
        ):
            raise ValueError(problem)


@dataclass(frozen=True)
class WebSettings:
    listen: str = "0.0.0.0:8443"
    tls: str = "auto"  # auto: TLS unless listening on loopback only | on | off
    idle_lock_minutes: float = 15.0
    session_hours: float = 12.0
    live_fps: float = 2.0
    server_names: Sequence[str] = ()  # names the pages answer to besides the device's own
    allow_plain_http: bool = False  # tls = "off" beyond loopback, said in so many words

    def __post_init__(self) -> None:
        validate(self, "web")
        object.__setattr__(self, "server_names", tuple(self.server_names))  # frozen, hashable
        host = split_listen(self.listen)[0]
        if self.tls == "off" and not is_loopback(host) and not self.allow_plain_http:
            raise ValueError(
                f'tls = "off" with listen = "{self.listen}" serves the pages unencrypted to the '
                "whole network, where browsers also refuse to decrypt clips (no WebCrypto on "
                'a plain http:// page): use tls = "auto" or "on", or listen on 127.0.0.1 '
                "behind an HTTPS proxy of your own; allow_plain_http = true if you mean it"
            )


@dataclass(frozen=True)
class GpioSettings:
    bell_pin: int = 17
    bounce: float = 0.3  # seconds: presses closer than this are one press
    led_pin: int | None = 27
    pir_pin: int | None = None
    chime_pin: int | None = None
    chime_seconds: float = 0.5

    def __post_init__(self) -> None:
        validate(self, "gpio")
        pins = [
            p for p in (self.bell_pin, self.led_pin, self.pir_pin, self.chime_pin) if p is not None
        ]
        if len(pins) != len(set(pins)):
            raise ValueError("two devices share a pin: each needs its own")


@dataclass(frozen=True)
class Config:
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    web: WebSettings = field(default_factory=WebSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)


# Each section's settings class. [privacy] masks and [motion] zones are polygons that
# go to the pipeline's settings instead; [privacy] has no class of its own.
SECTIONS: dict[str, type] = {
    "trigger": Policy,
    "motion": MotionSettings,
    "storage": StorageSettings,
    "camera": CameraSettings,
    "web": WebSettings,
    "gpio": GpioSettings,
    "mqtt": MqttSettings,
    "notify": NotifySettings,
}

# -- loading -------------------------------------------------------------------


class ConfigError(DoorbellError, ValueError):
    """The configuration file has problems; ``problems`` lists them, one a line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _polygons(value: Sequence) -> tuple:
    return tuple(tuple((float(x), float(y)) for x, y in poly) for poly in value)


def parse(data: dict, where: str) -> Config:
    """Settings from parsed TOML ``data``; ConfigError lists every problem, each
    starting with ``where`` (the file's name)."""
    specs = schema()
    problems: list[str] = []
    tables: dict[str, dict[str, Any]] = {name: {} for name in (*SECTIONS, "privacy")}
    for section, table in data.items():
        if section not in tables:
            problems.append(f"{where}: [{shown_name(section)}]: unknown section")
            continue
        if not isinstance(table, dict):
            problems.append(
                f"{where}: [{section}]: expected a table of keys, got {shown_value(table)}"
            )
            continue
        for key, value in table.items():
            spec = specs.get((section, key))
            if spec is None:
                problems.append(f"{where}: [{section}] {shown_name(key)}: unknown key")
            elif problem := check_value(spec, value):
                problems.append(f"{where}: {spec.name}: {problem}")
            else:
                tables[section][key] = float(value) if spec.kind is float else value
    zones = _polygons(tables["motion"].pop("zones", []))
    masks = _polygons(tables["privacy"].pop("masks", []))
    built: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        try:
            built[section] = cls(**tables[section])
        except (ValueError, TypeError) as err:
            problems.append(f"{where}: [{section}]: {err}")
    if "mqtt" in built and (problem := settings_problem(built["mqtt"])):
        problems.append(f"{where}: [mqtt] {problem}")
    if "notify" in built and (problem := notify_problem(built["notify"])):
        problems.append(f"{where}: [notify] {problem}")
    if problems:
        raise ConfigError(problems)
    pipeline = PipelineSettings(
        policy=built["trigger"], motion=built["motion"], masks=masks, zones=zones
    )
    return Config(
        pipeline=pipeline,
        storage=built["storage"],
        camera=built["camera"],
        web=built["web"],
        gpio=built["gpio"],
        mqtt=built["mqtt"],
        notify=built["notify"],
    )


MAX_FILE_SIZE = 1 << 20  # bytes: the annotated default file is 7 KB


def load_config(path: str | Path | None) -> Config:
    """Everything from the TOML file at ``path`` (defaults for everything not given).

    Raises ConfigError, one problem a line, each naming the file and the section and
    key (or the line) it is about: a file that cannot be read, is over 1 MiB, is not
    UTF-8 or not TOML, and every bad section, key and value in it.
    """
    if path is None:
        return Config()
    where = str(path)
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_FILE_SIZE + 1)
    except OSError as err:
        raise ConfigError([f"{where}: cannot read ({err.strerror})"]) from None
    if len(raw) > MAX_FILE_SIZE:
        raise ConfigError([f"{where}: not a config file: larger than 1 MiB"])
    return parse(_read_toml(raw, where), where)


_TABLE_LINE = re.compile(r"\s*\[\[?\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY_LINE = re.compile(r"\s*([^=#\[\s][^=#]*?)\s*=")
_LONG_DECIMAL = re.compile(r"(?<![0-9A-Za-z_.])[0-9][0-9_]{4300,}")
_NESTING = 100  # arrays and inline tables deeper than this are looked for (tomllib fails ~450)


def _read_toml(raw: bytes, where: str) -> dict:
    """The TOML document in ``raw``; ConfigError naming the line (and its key) of what
    cannot be read. tomllib raises more than TOMLDecodeError: UnicodeDecodeError (not
    UTF-8), ValueError (an integer past Python's 4300-digit limit), RecursionError
    (arrays or inline tables nested hundreds deep)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        lines = raw.decode("utf-8", "replace").split("\n")
        at = _place(lines, raw.count(b"\n", 0, err.start))
        raise ConfigError(
            [f"{where}: {at}: not UTF-8 text (byte 0x{raw[err.start]:02x})"]
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"{where}: not valid TOML ({err})"]) from None
    except ValueError:  # int() of a decimal integer past Python's 4300 digits
        found = _LONG_DECIMAL.search(text)
        raise _unreadable(
            where, text, found.start() if found else None, "a number of more than 4300 digits"
        ) from None
    except RecursionError:
        raise _unreadable(
            where, text, _too_deep(text), "arrays or tables nested too deeply"
        ) from None


def _unreadable(where: str, text: str, offset: int | None, what: str) -> ConfigError:
    """The problem ``what`` at ``offset`` in ``text`` (if found), named by its line and key."""
    if offset is None:
        return ConfigError([f"{where}: not valid TOML ({what})"])
    at = _place(text.split("\n"), text.count("\n", 0, offset))
    return ConfigError([f"{where}: {at}: {what}"])


def _too_deep(text: str) -> int | None:
    """Where arrays and inline tables first nest deeper than ``_NESTING`` (strings and
    comments skipped roughly: this only says where to look), or None."""
    depth, quote, comment = 0, "", False
    for at, char in enumerate(text):
        if comment:
            comment = char != "\n"
        elif quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#":
            comment = True
        elif char in "[{":
            depth += 1
            if depth > _NESTING:
                return at
        elif char in "]}":
            depth = max(0, depth - 1)
    return None


def _place(lines: list[str], index: int) -> str:
    """Line ``index`` (from 0) of a TOML file as a problem names it: ``[section] key
    (line 3)`` when a key is set on it (``[key] (line 1)`` before any table), else
    ``line 3``."""
    number = index + 1
    key = _KEY_LINE.match(lines[index]) if index < len(lines) else None
    if not key:
        return f"line {number}"
    tables = (_TABLE_LINE.match(line) for line in reversed(lines[:index]))
    section = next((found[1] for found in tables if found), None)
    name = shown_name(key[1])
    if section is None:  # a key before any table is a section's name, as parse says
        return f"[{name}] (line {number})"
    return f"[{shown_name(section)}] {name} (line {number})"


def load(path: str | Path | None) -> PipelineSettings:
    """The pipeline's settings from the TOML file at ``path``."""
    return load_config(path).pipeline
