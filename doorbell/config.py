"""Configuration: a TOML file into frozen, validated settings.

    [trigger]
    pre_roll = 5.0          # seconds of video before the event
    post_roll = 10.0        # seconds after the last activity
    max_clip = 120.0

    [motion]
    threshold = 25
    min_area = 0.005
    zones = [[[0.0, 0.4], [1.0, 0.4], [1.0, 1.0], [0.0, 1.0]]]   # only here counts

    [privacy]
    masks = [[[0.0, 0.0], [1.0, 0.0], [1.0, 0.2], [0.0, 0.2]]]   # never recorded

    [storage]
    data_dir = "/var/lib/doorbell"

    [camera]
    backend = "picamera2"   # synthetic | opencv | picamera2
    source = ""             # opencv: a file, a webcam index, a URL
    width = 1280
    height = 720
    fps = 15.0

    [web]
    listen = "0.0.0.0:8443" # beyond loopback: TLS with a self-signed certificate
    idle_lock_minutes = 15.0
    live_fps = 2.0

    [gpio]
    bell_pin = 17
    led_pin = 27

Unknown sections and keys, wrong types and out-of-range values are errors that
name the file, the key and what is wrong; nothing is silently ignored.
"""

import tomllib
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from doorbell.errors import DoorbellError
from doorbell.gpio import GpioSettings
from doorbell.motion import MotionSettings
from doorbell.pipeline import PipelineSettings
from doorbell.privacy import check_polygons
from doorbell.trigger import Policy

CAMERA_BACKENDS = ("synthetic", "opencv", "picamera2")


@dataclass(frozen=True)
class StorageSettings:
    data_dir: str = "/var/lib/doorbell"


@dataclass(frozen=True)
class CameraSettings:
    backend: str = "synthetic"
    source: str = ""  # opencv: a video file, a webcam index or a URL
    width: int = 1280
    height: int = 720
    fps: float = 15.0
    encoder: str = "auto"  # picamera2: auto | hardware | libav
    loop: bool = True  # opencv: play a file again from the start when it ends

    def __post_init__(self) -> None:
        if self.backend not in CAMERA_BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(CAMERA_BACKENDS)}")
        if self.backend == "opencv" and not self.source:
            raise ValueError("the opencv backend needs a source (a file, webcam index or URL)")
        if not (16 <= self.width <= 4096 and 16 <= self.height <= 4096):
            raise ValueError("width and height must be 16-4096")
        if not 1.0 <= self.fps <= 60.0:
            raise ValueError("fps must be 1-60")


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets) into its parts; ValueError if it is not that."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must be host:port, not {listen!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class WebSettings:
    listen: str = "127.0.0.1:8080"
    idle_lock_minutes: float = 15.0
    live_fps: float = 2.0
    tls: str = "auto"  # auto: TLS unless listening on loopback only | on | off

    def __post_init__(self) -> None:
        split_listen(self.listen)
        if not 0 < self.idle_lock_minutes <= 24 * 60:
            raise ValueError("idle_lock_minutes must be more than 0 and at most 1440")
        if not 0.2 <= self.live_fps <= 15:
            raise ValueError("live_fps must be 0.2-15")
        if self.tls not in ("auto", "on", "off"):
            raise ValueError("tls must be auto, on or off")


@dataclass(frozen=True)
class Config:
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    web: WebSettings = field(default_factory=WebSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)


class ConfigError(DoorbellError, ValueError):
    """The configuration file has problems; ``problems`` lists them, one a line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _typed(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _section(name: str, table: dict, cls: type, where: str, problems: list[str]) -> Any:
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in table.items():
        field = known.get(key)
        if field is None:
            problems.append(f"{where}: [{name}] {key}: unknown key")
            continue
        default = field.default if field.default is not MISSING else None
        if default is not None and not _typed(value, default):
            kind = type(default).__name__
            problems.append(f"{where}: [{name}] {key}: expected {kind}, got {value!r}")
            continue
        values[key] = float(value) if isinstance(default, float) else value
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        problems.append(f"{where}: [{name}]: {err}")
        return cls()


def _polygons(value: Any, key: str, where: str, problems: list[str]) -> tuple:
    try:
        polygons = tuple(tuple((float(x), float(y)) for x, y in poly) for poly in value)
    except (TypeError, ValueError):
        problems.append(f"{where}: {key}: expected a list of polygons, each a list of [x, y]")
        return ()
    problems.extend(f"{where}: {key}: {p}" for p in check_polygons(polygons))
    return polygons


SECTIONS = {
    "storage": StorageSettings,
    "camera": CameraSettings,
    "web": WebSettings,
    "gpio": GpioSettings,
}


def load(path: str | Path | None) -> PipelineSettings:
    """The pipeline's settings from the TOML file at ``path``."""
    return load_config(path).pipeline


def load_config(path: str | Path | None) -> Config:
    """Everything from the TOML file at ``path`` (defaults for everything not given)."""
    if path is None:
        return Config()
    where = str(path)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as err:
        raise ConfigError([f"{where}: cannot read ({err.strerror})"]) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([f"{where}: not valid TOML ({err})"]) from None
    problems: list[str] = []
    for section in data:
        if section not in {"trigger", "motion", "privacy", *SECTIONS}:
            problems.append(f"{where}: [{section}]: unknown section")
    motion_table = dict(data.get("motion", {}))
    zones = _polygons(motion_table.pop("zones", []), "[motion] zones", where, problems)
    privacy = dict(data.get("privacy", {}))
    masks = _polygons(privacy.pop("masks", []), "[privacy] masks", where, problems)
    problems.extend(f"{where}: [privacy] {key}: unknown key" for key in privacy)
    pipeline = replace(
        PipelineSettings(),
        policy=_section("trigger", data.get("trigger", {}), Policy, where, problems),
        motion=_section("motion", motion_table, MotionSettings, where, problems),
        masks=masks,
        zones=zones,
    )
    parts = {
        name: _section(name, data.get(name, {}), cls, where, problems)
        for name, cls in SECTIONS.items()
    }
    if problems:
        raise ConfigError(problems)
    return Config(pipeline=pipeline, **parts)
