"""The config file: every problem named with file, section and key; nothing ignored."""

import pytest

from doorbell import cli, config


def write(tmp_path, text):
    path = tmp_path / "doorbell.toml"
    path.write_text(text)
    return path


def test_a_good_file_sets_what_it_says(tmp_path):
    path = write(
        tmp_path,
        """
[trigger]
pre_roll = 3
post_roll = 7.5
pir = "confirm"

[motion]
threshold = 30
zones = [[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]]

[privacy]
masks = [[[0, 0], [1, 0], [1, 0.2], [0, 0.2]]]
""",
    )
    settings = config.load(path)
    assert settings.policy.pre_roll == 3.0 and settings.policy.pir == "confirm"
    assert settings.motion.threshold == 30
    assert settings.zones == (((0.0, 0.5), (1.0, 0.5), (1.0, 1.0)),)
    assert len(settings.masks) == 1


def test_every_problem_is_named(tmp_path):
    path = write(
        tmp_path,
        """
[trigger]
pre_roll = "five"
[motion]
treshold = 30
min_area = 2.0
[privacy]
masks = [[[0, 0], [2, 0], [1, 1]]]
[camera]
backend = "x"
[kamera]
backend = "opencv"
[web]
listen = "everywhere"
""",
    )
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    problems = info.value.problems
    assert f"{path}: [trigger] pre_roll: expected float, got 'five'" in problems
    assert f"{path}: [motion] treshold: unknown key" in problems
    assert f"{path}: [motion]: motion settings out of range: min_area" in problems
    assert f"{path}: [privacy] masks: polygon 1: point (2.0, 0.0) is outside 0.0-1.0" in problems
    assert f"{path}: [camera]: backend must be one of synthetic, opencv, picamera2" in problems
    assert f"{path}: [kamera]: unknown section" in problems
    assert f"{path}: [web]: listen must be host:port, not 'everywhere'" in problems


def test_not_toml(tmp_path):
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[trigger\n"))


def test_replay_reports_config_problems_one_a_line(tmp_path, data_dir, capsys):
    path = write(tmp_path, "[motion]\nthreshold = 0\n[extra]\n")
    code = cli.main(["replay", "nothing.mp4", "--data-dir", str(data_dir), "--config", str(path)])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"doorbell: {path}: [extra]: unknown section",
        f"doorbell: {path}: [motion]: motion settings out of range: threshold",
    ]


def test_replay_of_a_missing_file_says_so(tmp_path, data_dir, capsys):
    code = cli.main(["replay", str(tmp_path / "gone.mp4"), "--data-dir", str(data_dir)])
    assert code == 1
    assert (
        capsys.readouterr().err.strip() == f"doorbell: {tmp_path / 'gone.mp4'}: no such video file"
    )
