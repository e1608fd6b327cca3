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

Unknown sections and keys, wrong types and out-of-range values are errors that
name the file, the key and what is wrong; nothing is silently ignored.
"""

import tomllib
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any

from doorbell.errors import DoorbellError
from doorbell.motion import MotionSettings
from doorbell.pipeline import PipelineSettings
from doorbell.privacy import check_polygons
from doorbell.trigger import Policy


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


def load(path: str | Path | None) -> PipelineSettings:
    """Settings from the TOML file at ``path`` (defaults for everything not given)."""
    if path is None:
        return PipelineSettings()
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
        if section not in {"trigger", "motion", "privacy"}:
            problems.append(f"{where}: [{section}]: unknown section")
    motion_table = dict(data.get("motion", {}))
    zones = _polygons(motion_table.pop("zones", []), "[motion] zones", where, problems)
    privacy = dict(data.get("privacy", {}))
    masks = _polygons(privacy.pop("masks", []), "[privacy] masks", where, problems)
    problems.extend(f"{where}: [privacy] {key}: unknown key" for key in privacy)
    settings = replace(
        PipelineSettings(),
        policy=_section("trigger", data.get("trigger", {}), Policy, where, problems),
        motion=_section("motion", motion_table, MotionSettings, where, problems),
        masks=masks,
        zones=zones,
    )
    if problems:
        raise ConfigError(problems)
    return settings
