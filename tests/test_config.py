"""The config file: default.toml is the schema; every problem is named with file,
section and key; nothing is ignored."""

import dataclasses
import re
import subprocess
import sys
import tomllib

import pytest

from doorbell import cli, config, config_schema


def write(tmp_path, text):
    path = tmp_path / "doorbell.toml"
    path.write_text(text)
    return path


def test_a_good_file_sets_what_it_says(tmp_path):
    """Values in the file reach the settings, converted to their types."""
    path = write(
        tmp_path,
        """
[trigger]
pre_roll = 3
pre_roll_fps = 5
post_roll = 7.5
pir = "confirm"

[motion]
threshold = 30
zones = [[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]]

[privacy]
masks = [[[0, 0], [1, 0], [1, 0.2], [0, 0.2]]]

[storage]
quota_gb = 4

[gpio]
pir_pin = 4
""",
    )
    loaded = config.load_config(path)
    settings = loaded.pipeline
    assert settings.policy.pre_roll == 3.0 and settings.policy.pir == "confirm"
    assert settings.policy.pre_roll_fps == 5.0
    assert settings.motion.threshold == 30
    assert settings.zones == (((0.0, 0.5), (1.0, 0.5), (1.0, 1.0)),)
    assert len(settings.masks) == 1
    assert loaded.storage.quota_gb == 4.0 and isinstance(loaded.storage.quota_gb, float)
    assert loaded.gpio.pir_pin == 4 and loaded.gpio.chime_pin is None


def test_every_problem_is_named(tmp_path):
    """Each bad key gets its own line: the file, [section] key, and what is wrong."""
    path = write(
        tmp_path,
        """
[trigger]
pre_roll = "five"
[motion]
treshold = 30
min_area = 2.0
threshold = 300
min_frames = 2.5
[privacy]
masks = [[[0, 0], [2, 0], [1, 1]]]
[camera]
backend = "x"
[kamera]
backend = "opencv"
[web]
listen = "everywhere"
[gpio]
led_pin = 17
""",
    )
    with pytest.raises(config.ConfigError) as info:
        config.load_config(path)
    assert info.value.problems == [
        f"{path}: [trigger] pre_roll: expected a number, got 'five'",
        f"{path}: [motion] treshold: unknown key",
        f"{path}: [motion] min_area: must be 0.0001 to 0.5, got 2.0",
        f"{path}: [motion] threshold: must be 1 to 254, got 300",
        f"{path}: [motion] min_frames: expected a whole number, got 2.5",
        f"{path}: [privacy] masks: polygon 1: point (2.0, 0.0) is outside 0.0 to 1.0",
        f"{path}: [camera] backend: must be one of picamera2, opencv, synthetic, got 'x'",
        f"{path}: [kamera]: unknown section",
        f"{path}: [web] listen: listen must be host:port, not 'everywhere'",
        f"{path}: [gpio]: two devices share a pin: each needs its own",
    ]


def test_cross_key_rules_are_named_by_section(tmp_path):
    """Rules between keys (max_clip after pre_roll, opencv needs a source) name the section."""
    path = write(
        tmp_path, '[trigger]\npre_roll = 20\nmax_clip = 10\n[camera]\nbackend = "opencv"\n'
    )
    with pytest.raises(config.ConfigError) as info:
        config.load_config(path)
    assert info.value.problems == [
        f"{path}: [trigger]: max_clip must be longer than pre_roll",
        f"{path}: [camera]: the opencv backend needs a source (a file, webcam index or URL)",
    ]


@pytest.mark.parametrize("rate", ["0.01", "0.5", "0.99"])
def test_a_pre_roll_rate_under_one_frame_a_second_is_refused(tmp_path, rate):
    """Kept at 0.01 frames a second, a 5 s pre-roll held no frame at all."""
    path = write(tmp_path, f"[trigger]\npre_roll_fps = {rate}\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_config(path)
    assert info.value.problems == [
        f"{path}: [trigger]: pre_roll_fps must be 0 (every frame) or 1 to 60, got {rate}"
    ]
    for kept in ("0", "1", "2.5", "60"):
        assert config.load_config(write(tmp_path, f"[trigger]\npre_roll_fps = {kept}\n"))


def test_not_toml(tmp_path):
    """A file that is not TOML says so, with the parser's position."""
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[trigger\n"))


def test_a_section_that_is_not_a_table(tmp_path):
    """`trigger = 5` at the top is named, not a crash."""
    path = write(tmp_path, "trigger = 5\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_config(path)
    assert info.value.problems == [f"{path}: [trigger]: expected a table of keys, got 5"]


# -- default.toml is the schema ---------------------------------------------------


def test_the_default_file_is_the_defaults():
    """default.toml loads to exactly the settings classes' defaults, and it is a valid config."""
    assert config.parse(tomllib.loads(config.default_text()), "default.toml") == config.Config()


def test_every_setting_is_in_the_default_file_and_nothing_else():
    """Each field of each section's class has a documented key, and each key a field."""
    keys = set(config.schema())
    fields = {
        (section, f.name)
        for section, cls in config.SECTIONS.items()
        for f in dataclasses.fields(cls)
    } | {("motion", "zones"), ("privacy", "masks")}
    assert keys == fields


def test_every_key_states_what_it_may_hold():
    """Numbers have a range (a whole number may be a choice instead: rotation); strings are
    a choice, an address or free text; lists are polygons or host names."""
    for spec in config.schema().values():
        if spec.kind in (int, float) and not (spec.kind is int and spec.choices):
            assert spec.low is not None and spec.low <= (spec.default or spec.low) <= spec.high, (
                spec
            )
        if spec.kind is list:
            assert spec.shape in ("polygons", "names"), spec
        if spec.choices:
            default = str(spec.default) if spec.kind is int else spec.default
            assert default in spec.choices, spec


def test_the_schema_grammar():
    """Ranges, choices, shapes and commented-out optional keys are read from the comments."""
    specs = config_schema.parse_schema(
        "[a]\nn = 3  # 1 to 10 things\n# opt = 4  # 0 to 27; a pin\n"
        'w = "x"  # one of x, y\nl = "h:1"  # host:port\ns = ""  # anything\n'
    )
    assert specs[("a", "n")] == config_schema.Spec("a", "n", 3, int, 1.0, 10.0)
    assert specs[("a", "opt")] == config_schema.Spec("a", "opt", None, int, 0.0, 27.0)
    assert specs[("a", "w")].choices == ("x", "y")
    assert specs[("a", "l")].shape == "host:port"
    assert specs[("a", "s")] == config_schema.Spec("a", "s", "", str)


def test_settings_made_in_code_are_checked_too():
    """The same ranges hold for settings built in code: ValueError names the key."""
    with pytest.raises(ValueError, match=r"\[motion\] threshold: must be 1 to 254, got 0"):
        config.MotionSettings(threshold=0)
    with pytest.raises(ValueError, match=r"\[gpio\] pir_pin: must be 0 to 27, got 40"):
        config.GpioSettings(pir_pin=40)


def test_config_does_not_load_the_video_stack():
    """`doorbell config check` imports no OpenCV, PyAV, numpy or gpiozero."""
    code = (
        "import sys, doorbell.cli as c; c.main(['config', 'default']);"
        "sys.stderr.write(' '.join(m for m in ('cv2', 'av', 'numpy', 'gpiozero') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stderr == ""
    assert out.stdout == config.default_text()


# -- doorbell config check ----------------------------------------------------------


def test_config_check_passes_a_good_file(tmp_path, capsys):
    """Exit 0 and a one-line ok for a valid file, including the shipped default."""
    path = write(tmp_path, config.default_text())
    assert cli.main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok\n"


def test_config_check_names_each_problem(tmp_path, capsys):
    """Exit 1 and one line per problem on stderr, in file order."""
    path = write(tmp_path, "[motion]\nthreshold = 0\n[extra]\n[web]\nlive_fps = 99\n")
    assert cli.main(["config", "check", str(path)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [
        f"doorbell: {path}: [motion] threshold: must be 1 to 254, got 0",
        f"doorbell: {path}: [extra]: unknown section",
        f"doorbell: {path}: [web] live_fps: must be 0.2 to 15, got 99",
    ]


def test_config_check_of_a_missing_file(tmp_path, capsys, monkeypatch):
    """A missing file (here from $DOORBELL_CONFIG) is named with the reason."""
    monkeypatch.setenv("DOORBELL_CONFIG", str(tmp_path / "none.toml"))
    assert cli.main(["config", "check"]) == 1
    assert capsys.readouterr().err == (
        f"doorbell: {tmp_path / 'none.toml'}: cannot read (No such file or directory)\n"
    )


def test_replay_reports_config_problems_one_a_line(tmp_path, data_dir, capsys):
    """Other commands that take --config report the same lines."""
    path = write(tmp_path, "[motion]\nthreshold = 0\n[extra]\n")
    code = cli.main(["replay", "nothing.mp4", "--data-dir", str(data_dir), "--config", str(path)])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"doorbell: {path}: [motion] threshold: must be 1 to 254, got 0",
        f"doorbell: {path}: [extra]: unknown section",
    ]


def test_replay_of_a_missing_file_says_so(tmp_path, data_dir, capsys):
    """A missing video is one line naming it."""
    code = cli.main(["replay", str(tmp_path / "gone.mp4"), "--data-dir", str(data_dir)])
    assert code == 1
    assert (
        capsys.readouterr().err.strip() == f"doorbell: {tmp_path / 'gone.mp4'}: no such video file"
    )


def test_the_readme_documents_every_key():
    """The README's config reference has a row for each key of the schema, and no other."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = set(re.findall(r"^\| `\[(\w+)\] (\w+)` \|", readme, re.MULTILINE))
    assert rows == set(config.schema())


# -- picture sizes ------------------------------------------------------------------


def test_an_odd_picture_size_is_refused_by_key(tmp_path, capsys):
    """H.264 (4:2:0) has no odd side: `config check` names width and height."""
    path = write(tmp_path, '[camera]\nbackend = "synthetic"\nwidth = 641\nheight = 481\n')
    assert cli.main(["config", "check", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"doorbell: {path}: [camera] width: must be an even number "
        "(H.264 pictures have even sides), got 641",
        f"doorbell: {path}: [camera] height: must be an even number "
        "(H.264 pictures have even sides), got 481",
    ]


def test_sizes_the_pis_hardware_encoder_cannot_take_are_refused(tmp_path):
    """picamera2 with encoder auto (the hardware one on a Pi 4, 3, Zero 2 W) or hardware:
    32 to 1920 a side and 8192 macroblocks. libav, or another backend, takes more."""
    path = write(tmp_path, "[camera]\nwidth = 2592\nheight = 1944\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_config(path)
    assert info.value.problems == [
        f"{path}: [camera]: width and height 2592x1944: the Pi's hardware H.264 encoder "
        '(encoder = "auto" on a Pi 4, 3 or Zero 2 W) takes 32 to 1920 pixels a side and '
        "8192 macroblocks of 16x16 a picture, such as 1920x1080 or 1080x1920; choose such "
        'a size, or set encoder = "libav" (the CPU encoder)'
    ]
    for text in (
        '[camera]\nencoder = "hardware"\nwidth = 1920\nheight = 1920\n',
        '[camera]\nencoder = "auto"\nwidth = 16\nheight = 16\n',
    ):
        with pytest.raises(config.ConfigError, match=r"hardware H\.264 encoder"):
            config.load_config(write(tmp_path, text))
    for text in (
        "[camera]\nwidth = 1920\nheight = 1080\n",
        "[camera]\nwidth = 1080\nheight = 1920\n",
        '[camera]\nencoder = "libav"\nwidth = 2592\nheight = 1944\n',
        '[camera]\nbackend = "synthetic"\nwidth = 2592\nheight = 1944\n',
    ):
        camera = config.load_config(write(tmp_path, text)).camera
        assert camera.width * camera.height in (1920 * 1080, 2592 * 1944)


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["doorbell.lan", "porch.fritz.box."], None),
        (["evil example"], "expected host names such as \"doorbell.lan\", got 'evil example'"),
        (["http://doorbell.lan"], "got 'http://doorbell.lan'"),
        ([7], "got 7"),
    ],
)
def test_server_names_are_host_names(names, problem):
    """[web] server_names: host names only, the bad one named."""
    if problem is None:
        assert config.WebSettings(server_names=names).server_names == tuple(names)
        return
    with pytest.raises(ValueError, match="server_names") as caught:
        config.WebSettings(server_names=names)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("web", "refused"),
    [
        ('listen = "0.0.0.0:8443"\ntls = "off"', True),
        ('listen = "192.168.1.20:80"\ntls = "off"', True),
        ('listen = "[::]:8443"\ntls = "off"', True),
        ('listen = "127.0.0.1:8080"\ntls = "off"', False),
        ('listen = "[::1]:8080"\ntls = "off"', False),
        ('listen = "localhost:8080"\ntls = "off"', False),
        ('listen = "0.0.0.0:8443"\ntls = "auto"', False),
        ('listen = "0.0.0.0:8080"\ntls = "off"\nallow_plain_http = true', False),
    ],
)
def test_plain_http_beyond_loopback_is_refused_unless_said_in_so_many_words(
    tmp_path, capsys, web, refused
):
    """Pages without TLS on the network: passphrase proofs and clips cross it in the clear,
    and browsers offer no WebCrypto on such a page, so no clip could be opened there.
    `config check` (and the service at start) refuse it unless allow_plain_http says so."""
    path = write(tmp_path, f"[web]\n{web}\n")
    assert cli.main(["config", "check", str(path)]) == (1 if refused else 0)
    said = capsys.readouterr().err
    if refused:
        assert said.startswith(f'doorbell: {path}: [web]: tls = "off" with listen')
        assert "allow_plain_http = true" in said and "Traceback" not in said


def test_a_quarter_turned_pi_camera_is_encoded_on_the_cpu():
    """90 and 270 are turned in software, so the Pi's encoder (and its size limit) is not
    used: "hardware" is refused by name, a size only the CPU encoder takes is accepted."""
    with pytest.raises(ValueError, match=r'rotation 90: .*encoder = "hardware" cannot be had'):
        config.CameraSettings(rotation=90, encoder="hardware")
    assert config.CameraSettings(rotation=270, width=2560, height=1440).rotation == 270
    with pytest.raises(ValueError, match=r"hardware H\.264 encoder"):
        config.CameraSettings(rotation=180, width=2560, height=1440)
    with pytest.raises(ValueError, match=r"\[camera\] rotation: must be one of 0, 90, 180, 270"):
        config.CameraSettings(rotation=45)
