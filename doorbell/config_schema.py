"""The configuration's schema, read from the annotated ``default.toml`` beside this
module, and the checks of one value against it (:mod:`doorbell.config` builds the
settings with them).

    specs = schema()                          # {(section, key): Spec}
    check_value(specs[("motion", "threshold")], 300)   # "must be 1 to 254, got 300"
    host, port = split_listen("[::1]:8443")   # ValueError if it is not host:port

The comment at the end of each key's line in ``default.toml`` gives the range
("0 to 30 seconds"), the choices ("one of off, trigger, confirm"), or the kind
("polygons", "host:port"). A key commented out there is optional.
"""

import math
import numbers
import re
import tomllib
from dataclasses import dataclass, fields, replace
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# -- the schema, read from default.toml -------------------------------------


@dataclass(frozen=True)
class Spec:
    """What one key may hold."""

    section: str
    key: str
    default: Any  # None for an optional key
    kind: type  # bool, int, float, str or list
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    shape: str = ""  # "polygons" | "host:port" | "names" | ""
    even: bool = False  # a whole number that must be even ("an even number" in its note)

    @property
    def name(self) -> str:
        return f"[{self.section}] {self.key}"


_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_KEY = re.compile(r"^(?P<off>#\s*)?(?P<key>[a-z_]+)\s*=\s*(?P<value>.+?)\s*#\s*(?P<note>.*)$")
_RANGE = re.compile(r"^(-?\d+(?:\.\d+)?) to (-?\d+(?:\.\d+)?)\b")
_CHOICES = re.compile(r"^one of ([a-z0-9_]+(?:, [a-z0-9_]+)*)")


def parse_schema(text: str) -> dict[tuple[str, str], Spec]:
    """The specs of an annotated TOML file such as default.toml."""
    specs: dict[tuple[str, str], Spec] = {}
    section = ""
    for line in text.splitlines():
        header = re.match(r"^\[([a-z_]+)\]\s*$", line)
        if header:
            section = header[1]
            continue
        match = _KEY.match(line)
        if not match or not section:
            continue
        value = tomllib.loads(f"v = {match['value']}")["v"]
        note = match["note"]
        spec = Spec(section, match["key"], None if match["off"] else value, type(value))
        if found := _RANGE.match(note):
            spec = replace(spec, low=float(found[1]), high=float(found[2]))
            spec = replace(spec, even="an even number" in note)
        elif found := _CHOICES.match(note):
            spec = replace(spec, choices=tuple(found[1].split(", ")))
        elif note.startswith(("polygons", "host:port", "names")):
            spec = replace(spec, shape=note.split(";")[0].split()[0])
        specs[(section, spec.key)] = spec
    return specs


@cache
def default_text() -> str:
    """The annotated default config shipped with the package."""
    return resources.files("doorbell").joinpath("default.toml").read_text(encoding="utf-8")


@cache
def schema() -> dict[tuple[str, str], Spec]:
    return parse_schema(default_text())


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")
_SHOWN_CHARACTERS = 200


def shown_name(name: str) -> str:
    """A section or key name as a problem shows it: as it is when it is a plain word (what
    TOML writes without quotes), else quoted like a Python string, so that no control
    character or line separator in it reaches a message (``'a\\nb'``)."""
    return name if _PLAIN_NAME.fullmatch(name) else repr(name)


def shown_value(value: Any) -> str:
    """A value as a problem shows it: its repr, cut at 200 characters; a number Python
    will not write out in decimal (more than 4300 digits; repr raises ValueError) is
    described instead."""
    try:
        text = repr(value)
    except ValueError:
        what = "a number" if isinstance(value, int) else "a value holding a number"
        return f"{what} of more than 4300 digits"
    return text if len(text) <= _SHOWN_CHARACTERS else text[:_SHOWN_CHARACTERS] + "…"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def check_value(spec: Spec, value: Any) -> str | None:
    """What is wrong with ``value`` for ``spec``, or None."""
    kind = spec.kind
    if kind is bool and not isinstance(value, bool):
        return f"expected true or false, got {shown_value(value)}"
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        return f"expected a whole number, got {shown_value(value)}"
    if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"expected a number, got {shown_value(value)}"
    if kind is str and not isinstance(value, str):
        return f"expected a string, got {shown_value(value)}"
    if kind is str and "\x00" in value:  # no path, name or address holds one
        return f"must not contain a NUL character, got {shown_value(value)}"
    if kind is list and not isinstance(value, list | tuple):
        return f"expected a list, got {shown_value(value)}"
    if spec.low is not None and spec.high is not None and not spec.low <= value <= spec.high:
        return f"must be {_number(spec.low)} to {_number(spec.high)}, got {shown_value(value)}"
    if spec.even and value % 2:
        return f"must be an even number (H.264 pictures have even sides), got {shown_value(value)}"
    if spec.choices and (str(value) if kind is int else value) not in spec.choices:
        return f"must be one of {', '.join(spec.choices)}, got {shown_value(value)}"
    if spec.shape == "polygons":
        return check_polygons(value)
    if spec.shape == "names":
        bad = [n for n in value if not isinstance(n, str) or not _HOSTNAME.fullmatch(n)]
        if bad:
            return f'expected host names such as "doorbell.lan", got {shown_value(bad[0])}'
    if spec.shape == "host:port":
        try:
            split_listen(value)
        except ValueError as err:
            return str(err)
    return None


def _is_point(point: Any) -> bool:
    """Whether ``point`` is a pair of numbers (a string, a boolean or a table is not)."""
    return (
        isinstance(point, list | tuple)
        and len(point) == 2
        and all(isinstance(c, numbers.Real) and not isinstance(c, bool) for c in point)
    )


def check_polygons(polygons: Any) -> str | None:
    """What is wrong with a list of polygons (relative [x, y] points), or None."""
    problems = []
    for n, poly in enumerate(polygons, 1):
        if not isinstance(poly, list | tuple) or not all(_is_point(p) for p in poly):
            return "expected a list of polygons, each a list of [x, y] points (numbers)"
        points = [(_coordinate(x), _coordinate(y)) for x, y in poly]
        if len(points) < 3:
            problems.append(f"polygon {n} has {len(points)} points; it needs at least 3")
        outside = [p for p in points if not (0.0 <= p[0] <= 1.0 and 0.0 <= p[1] <= 1.0)]
        if outside:
            problems.append(f"polygon {n}: point {outside[0]} is outside 0.0 to 1.0")
    return "; ".join(problems) or None


def _coordinate(number: Any) -> float:
    """``number`` as a float; an integer too large for one (float() would raise
    OverflowError) as infinity."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def validate(settings: "DataclassInstance", section: str) -> None:
    """Check a settings object's fields against the schema; ValueError names each bad key."""
    specs = schema()
    problems = []
    for f in fields(settings):
        spec = specs.get((section, f.name))
        value = getattr(settings, f.name)
        if spec is None or (value is None and spec.default is None):
            continue
        problem = check_value(spec, value)
        if problem:
            problems.append(f"{spec.name}: {problem}")
    if problems:
        raise ValueError("; ".join(problems))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listen address) is this computer only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` (IPv6 in brackets) into its parts; ValueError if it is not that: the
    host an IP address or a host name, the port 0 to 65535 in ASCII digits."""
    import ipaddress

    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    digits = port.isascii() and port.isdigit() and len(port) <= 5  # not "٣", "¹", 5000 nines
    try:
        ipaddress.ip_address(host)
        named = True
    except ValueError:  # then a host name such as localhost or doorbell.lan
        named = bool(_HOSTNAME.fullmatch(host))
    if not sep or not named or not digits or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must be host:port, not {shown_value(listen)}")
    return host, int(port)
