"""Fuzzing the config loader: whatever the file holds, a ConfigError naming the key.

``doorbell config check`` and the service load the file with
:func:`doorbell.config.load_config`. Hypothesis builds TOML documents from the
schema's own sections and keys (and unknown ones), with values of every wrong
kind: other types, huge and non-finite numbers, tables where a number goes,
polygons of anything, strings with control characters; and files that are not
TOML or not UTF-8 at all. The loader either gives settings or raises
ConfigError, one problem a line, each line starting with the file's name and
then the section and key it is about. Crashes it found are named tests at the end.
"""

import math
import tomllib
from itertools import count
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from doorbell import config, config_schema
from doorbell.config import ConfigError

SPECS = config.schema()
SECTIONS = sorted({section for section, _ in SPECS} | {"privacy"})
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = count()


# -- writing TOML ------------------------------------------------------------------------


def toml_string(text: str) -> str:
    """A TOML basic string for ``text``; a lone surrogate becomes an escape TOML refuses."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
        )
    raise TypeError(f"no TOML for {value!r}")


def toml_document(doc: dict, subtables: bool) -> str:
    """``doc`` (section -> table or value) as TOML; with ``subtables``, a table value
    inside a section is written as its own ``[section.key]`` table, not inline."""
    top, tables = [], []
    for section, table in doc.items():
        if not isinstance(table, dict):
            top.append(f"{toml_string(section)} = {toml_value(table)}")
            continue
        tables.append(f"[{toml_string(section)}]")
        later = []
        for key, value in table.items():
            if subtables and isinstance(value, dict):
                later.append(f"[{toml_string(section)}.{toml_string(key)}]")
                later += [f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()]
            else:
                tables.append(f"{toml_string(key)} = {toml_value(value)}")
        tables += later
    return "\n".join(top + tables) + "\n"


# -- values ---------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6),
    st.integers(-(2**80), 2**80),
    st.integers(10**300, 10**4000),  # past any float; under Python's 4300-digit limit
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]),
)
STRINGS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["off", "auto", "on", "opencv", "libav", "synthetic", "", "\x00", "a\nb", "٣", "¹"]
    ),
    st.sampled_from(["0.0.0.0:8443", "[::1]:80", "host:99999", "host:٣", "host:¹", ":80"]),
    st.builds(lambda digits: "127.0.0.1:" + digits, st.text("0123456789", min_size=6)),
)
SCALARS = st.one_of(st.booleans(), NUMBERS, STRINGS)
ANY = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
COORDINATE = st.one_of(
    st.floats(0, 1), NUMBERS, st.booleans(), st.text(max_size=3), st.sampled_from(["01", "10"])
)
POINT = st.one_of(
    st.lists(st.floats(0, 1), min_size=2, max_size=2),
    st.lists(COORDINATE, max_size=3),
    COORDINATE,
    st.dictionaries(st.text(max_size=2), COORDINATE, max_size=2),
)
POLYGONS = st.lists(
    st.one_of(st.lists(POINT, max_size=5), st.text(max_size=4), NUMBERS, st.just({})),
    max_size=3,
)


def value_for(spec: config_schema.Spec) -> st.SearchStrategy:
    """Mostly the right kind (in range or not), often anything at all."""
    right: st.SearchStrategy
    if spec.shape == "polygons":
        right = POLYGONS
    elif spec.kind is list:
        right = st.lists(st.one_of(STRINGS, SCALARS), max_size=3)
    elif spec.choices:
        right = st.one_of(st.sampled_from(spec.choices), STRINGS)
    elif spec.kind is str:
        right = STRINGS
    elif spec.kind is bool:
        right = st.booleans()
    else:
        low, high = spec.low or 0, spec.high or 10
        right = st.one_of(st.integers(int(low) - 2, int(high) + 2), st.floats(low, high), NUMBERS)
    return st.one_of(right, right, ANY)


def unknown_name() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=8), st.sampled_from(["a\nb", "\x0c", "x\u2028y", "[t]"]))


@st.composite
def documents(draw: st.DrawFn) -> dict:
    """Sections of the schema (and unknown ones), each with known and unknown keys."""
    doc: dict = {}
    for section in draw(st.lists(st.sampled_from(SECTIONS), max_size=4, unique=True)):
        keys = [key for (sec, key) in SPECS if sec == section]
        table: dict = {}
        for key in draw(st.lists(st.sampled_from(keys), max_size=6, unique=True)):
            table[key] = draw(value_for(SPECS[(section, key)]))
        if draw(st.integers(0, 4)) == 0:
            table[draw(unknown_name())] = draw(ANY)
        doc[section] = table if draw(st.integers(0, 9)) else draw(ANY)
    if draw(st.integers(0, 4)) == 0:
        doc[draw(unknown_name())] = draw(st.one_of(ANY, st.dictionaries(unknown_name(), ANY)))
    return doc


# -- the property --------------------------------------------------------------------------


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"doorbell-{next(NAMES)}.toml"
    path.write_bytes(data)
    return path


def check_file(path: Path) -> config.Config | None:
    """Load ``path``: settings, or a ConfigError whose every line names the file and
    then what it is about; anything else fails the test."""
    try:
        return config.load_config(path)
    except ConfigError as err:
        assert err.problems
        assert str(err).splitlines() == err.problems, "a problem spans lines"
        for line in err.problems:
            assert line.startswith(f"{path}: "), line
            about = line[len(f"{path}: ") :]
            assert about.startswith(
                ("[", "line ", "not valid TOML", "not UTF-8", "not a config")
            ), line
        return None


def named_in(doc: dict, problem: str) -> bool:
    """Whether ``problem`` (after the file's name) names a section or key of ``doc``."""
    for section, table in doc.items():
        names = [config.shown_name(section)]
        if isinstance(table, dict):
            names += [f"{config.shown_name(section)}] {config.shown_name(k)}" for k in table]
        if any(problem.startswith(f"[{name}") for name in names):
            return True
    return False


@FUZZ
@given(documents(), st.booleans())
def test_any_document_gives_settings_or_problems_naming_the_key(tmp_path, doc, subtables):
    text = toml_document(doc, subtables)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        written_as_toml = False  # e.g. a key twice, once inline and once as a table
    else:
        written_as_toml = True
    path = write(tmp_path, text.encode("utf-8", "surrogatepass"))
    loaded = check_file(path)
    event("settings" if loaded else "problems" if written_as_toml else "not TOML")
    if loaded is not None:
        assert all(section in SECTIONS for section in doc)
        return
    if written_as_toml:
        with pytest.raises(ConfigError) as caught:
            config.load_config(path)
        for line in caught.value.problems:
            assert named_in(doc, line[len(f"{path}: ") :]), line


SURROGATES = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)


@FUZZ
@given(documents(), SURROGATES, st.sampled_from(sorted(SPECS)))
def test_parsed_data_with_lone_surrogates_gives_problems_naming_the_key(doc, lone, where):
    """``parse`` takes what any TOML reader gives; Python's strings may hold lone
    surrogates (TOML's cannot): in a value, a key and a section name."""
    section, key = where
    doc = {**doc, section: {key: f"x{lone}:80", lone: 1}, lone: {}}
    with pytest.raises(ConfigError) as caught:
        config.parse(doc, "f.toml")
    said = caught.value.problems
    assert str(caught.value).splitlines() == said
    assert all(line.startswith("f.toml: [") for line in said)
    assert f"f.toml: [{section}] {lone!r}: unknown key" in said
    assert f"f.toml: [{lone!r}]: unknown section" in said
    if (section, key) == ("web", "listen"):
        assert any(line.startswith("f.toml: [web] listen: listen must be") for line in said)


DEFAULT = config.default_text().encode()


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=400),
        st.builds(
            lambda at, cut, extra: DEFAULT[:at] + extra + DEFAULT[at + cut :],
            st.integers(0, len(DEFAULT)),
            st.integers(0, 40),
            st.one_of(
                st.binary(max_size=6),
                st.sampled_from(
                    [b"\xed\xa0\x80", b"\xff", b"[", b"{", b"=", b"\n[x]\n", b"9" * 5000]
                ),
            ),
        ),
    )
)
@example(b"\xed\xa0\x80")  # a lone surrogate, as UTF-8 would have it: not UTF-8 at all
def test_any_bytes_give_settings_or_problems(tmp_path, data):
    check_file(write(tmp_path, data))


# -- what the fuzzing found, one named test each ----------------------------------------


def problems(tmp_path: Path, text: bytes | str) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        config.load_config(path)
    return [line.removeprefix(f"{path}: ") for line in caught.value.problems]


def test_a_number_of_5000_digits_is_named_by_its_line_and_key(tmp_path):
    """tomllib raised ValueError (Python's 4300-digit limit), not TOMLDecodeError."""
    assert problems(tmp_path, "[trigger]\npre_roll = 1\npost_roll = " + "9" * 5000 + "\n") == [
        "[trigger] post_roll (line 3): a number of more than 4300 digits"
    ]


def test_a_hex_number_of_5000_digits_is_named_too(tmp_path):
    """tomllib reads it (the limit is for decimal), but its repr in the problem raised
    ValueError."""
    assert problems(tmp_path, "[gpio]\nbell_pin = 0x" + "f" * 5000 + "\n") == [
        "[gpio] bell_pin: must be 0 to 27, got a number of more than 4300 digits"
    ]


def test_arrays_nested_thousands_deep_are_refused_by_line(tmp_path):
    """tomllib recursed until RecursionError."""
    said = problems(tmp_path, "[motion]\nzones = " + "[" * 5000 + "]" * 5000 + "\n")
    assert said == ["[motion] zones (line 2): arrays or tables nested too deeply"]


def test_inline_tables_nested_thousands_deep_are_refused_by_line(tmp_path):
    said = problems(tmp_path, "[web]\n\nlisten = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n")
    assert said == ["[web] listen (line 3): arrays or tables nested too deeply"]


def test_a_file_that_is_not_utf8_is_named_by_line_and_key(tmp_path):
    """tomllib.load raised UnicodeDecodeError: a lone surrogate's bytes, a Latin-1 é."""
    said = problems(tmp_path, b'[camera]\nsource = "\xed\xa0\x80"\n')
    assert said == ["[camera] source (line 2): not UTF-8 text (byte 0xed)"]
    said = problems(tmp_path, b'# caf\xe9\n[camera]\nsource = "x"\n')
    assert said == ["line 1: not UTF-8 text (byte 0xe9)"]


def test_a_huge_integer_in_a_polygon_is_outside_not_a_crash(tmp_path):
    """float() of it raised OverflowError."""
    big = "1" + "0" * 400
    said = problems(tmp_path, f"[privacy]\nmasks = [[[0, 0], [1, 0], [{big}, 1]]]\n")
    assert said == ["[privacy] masks: polygon 1: point (inf, 1.0) is outside 0.0 to 1.0"]


@pytest.mark.parametrize(
    "polygon",
    [
        '[["01", "10", "11"]]',  # two-letter strings unpacked into x and y
        "[[[true, false], [false, false], [true, true]]]",  # booleans as 1.0 and 0.0
        '[{"01" = 1, "00" = 2, "10" = 3}]',  # a table's keys as points
    ],
)
def test_points_must_be_pairs_of_numbers(tmp_path, polygon):
    """These were accepted as polygons: strings, booleans and keys read as numbers."""
    said = problems(tmp_path, f"[motion]\nzones = {polygon}\n")
    assert said == [
        "[motion] zones: expected a list of polygons, each a list of [x, y] points (numbers)"
    ]


@pytest.mark.parametrize(
    ("listen", "why"),
    [
        ("0.0.0.0:٣", "Arabic-Indic three: was accepted as port 3"),
        ("0.0.0.0:¹", "a superscript one: int() raised, its message was the problem"),
        ("0.0.0.0:" + "9" * 5000, "int() past the digit limit"),
    ],
)
def test_a_port_is_ascii_digits(tmp_path, listen, why):
    said = problems(tmp_path, f'[web]\nlisten = "{listen}"\n')
    assert said == [f"[web] listen: listen must be host:port, not {config.shown_value(listen)}"], (
        why
    )


@pytest.mark.parametrize("name", ["a\nb", "\x0c", "x\u2028y", "a\x1b[31mred"])
def test_an_unknown_name_with_control_characters_stays_on_one_line(tmp_path, name):
    """An unknown section or key is quoted when it is not a plain word, so that a line
    separator in it (str.splitlines splits at \\f and U+2028 too) cannot split the problem."""
    said = problems(tmp_path, f"[{toml_string(name)}]\n[trigger]\n{toml_string(name)} = 1\n")
    assert said == [f"[{name!r}]: unknown section", f"[trigger] {name!r}: unknown key"]


def test_a_nul_in_a_string_is_refused_by_key(tmp_path):
    """A data_dir with a NUL passed the check and failed later, in the service's first
    os call ("embedded null byte")."""
    said = problems(tmp_path, '[storage]\ndata_dir = "/var/lib/door\\u0000bell"\n')
    assert said == [
        "[storage] data_dir: must not contain a NUL character, got '/var/lib/door\\x00bell'"
    ]
