"""``doorbell config check [FILE]`` and ``doorbell config default``: the config file,
without the video stack."""

import argparse
import sys

from doorbell.cli.common import config_path


def cmd_config_check(args: argparse.Namespace) -> int:
    """Load the config file, and the files it names for MQTT's password and the
    notification URLs, and print ``PATH: ok``. Returns 0.

    Raises ConfigError listing every problem, one a line, each naming the file and the
    key (or the named file and its line), never a password or a URL's token.
    """
    from doorbell.config import ConfigError, load_config

    path = config_path(args.file)
    config = load_config(path)  # ConfigError: one line a problem, naming the file and key
    problems = []
    if config.mqtt.enabled and config.mqtt.password_file:
        from doorbell.mqtt_settings import MqttSettingsError, read_password

        try:
            read_password(config.mqtt.password_file)
        except MqttSettingsError as err:
            problems.append(f"{path}: [mqtt] {err}")
    if config.mqtt.enabled and config.mqtt.tls and config.mqtt.ca_file:
        import ssl

        reason = ""
        try:
            ssl.create_default_context(cafile=config.mqtt.ca_file)
        except ssl.SSLError:  # read, but not a certificate
            reason = "it holds no certificate in PEM form, which starts -----BEGIN CERTIFICATE-----"
        except (OSError, ValueError) as err:  # missing, unreadable
            reason = str(getattr(err, "strerror", None) or err)
        if reason:
            problems.append(
                f"{path}: [mqtt] ca_file {config.mqtt.ca_file}: cannot use it ({reason})"
            )
    if config.notify.enabled:
        from doorbell.notify_apprise import check_urls_file

        problems += [f"{path}: {p}" for p in check_urls_file(config.notify.urls_file)]
    if problems:
        raise ConfigError(problems)
    print(f"{path}: ok")
    return 0


def cmd_config_default(args: argparse.Namespace) -> int:
    """Print the annotated default config, which doubles as its reference. Returns 0."""
    from doorbell.config import default_text

    sys.stdout.write(default_text())
    return 0


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``config`` and its actions to the top-level ``commands``."""
    conf = commands.add_parser("config", help="the config file").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    check = conf.add_parser("check", help="check a config file; exit 1 and name every problem")
    check.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="default: $DOORBELL_CONFIG or /etc/doorbell/doorbell.toml",
    )
    check.set_defaults(func=cmd_config_check)
    conf.add_parser("default", help="print the annotated default config").set_defaults(
        func=cmd_config_default
    )
