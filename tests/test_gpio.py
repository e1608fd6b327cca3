"""The wires, with gpiozero's own MockFactory: no home-made GPIO fake, no sleeping."""

import threading
from types import SimpleNamespace

import pytest
from gpiozero.pins.mock import MockFactory

from doorbell.gpio import DoorbellPins, GpioSettings, indicator_on, is_new_press


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig():
    r = SimpleNamespace(factory=MockFactory(), clock=Clock(), presses=[], pir=[], scheduled=[])
    r.pir_seen = threading.Event()

    def on_pir(active, at):
        r.pir.append((active, at))
        r.pir_seen.set()

    r.pins = DoorbellPins(
        GpioSettings(pir_pin=4, chime_pin=22),
        on_press=r.presses.append,
        on_pir=on_pir,
        clock=r.clock,
        later=lambda seconds, action: r.scheduled.append((seconds, action)),
        pin_factory=r.factory,
    )
    yield r
    r.pins.close()
    r.factory.reset()


def press(factory, pin=17):
    factory.pin(pin).drive_low()
    factory.pin(pin).drive_high()


def test_a_press_reaches_the_pipeline_with_its_time(rig):
    press(rig.factory)
    assert rig.presses == [100.0]


def test_chatter_within_the_bounce_time_is_one_press(rig):
    press(rig.factory)
    rig.clock.now += 0.01
    press(rig.factory)
    rig.clock.now += 0.1
    press(rig.factory)
    assert rig.presses == [100.0]
    rig.clock.now += 1.0
    press(rig.factory)
    assert rig.presses == [100.0, 101.11]


@pytest.mark.parametrize("hold", [0.05, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("chatter", [0.001, 0.002, 0.005])
def test_a_held_push_that_chatters_on_press_and_release_is_one_press(rig, hold, chatter):
    """The issue's case: press, hold 0.5-2 s, release with a few ms of chatter (the
    contact bouncing closed again as it opens) once rang twice and pulsed the chime twice."""
    pin = rig.factory.pin(17)
    start = rig.clock.now
    for _ in range(3):  # closing: it bounces
        pin.drive_low()
        rig.clock.now += chatter
        pin.drive_high()
        rig.clock.now += chatter
    pin.drive_low()
    rig.clock.now = start + hold
    for _ in range(3):  # opening: it bounces too
        pin.drive_high()
        rig.clock.now += chatter
        pin.drive_low()
        rig.clock.now += chatter
    pin.drive_high()
    assert rig.presses == [start]
    assert len([s for s in rig.scheduled if s[0] == 0.5]) == 1  # the chime pulsed once
    rig.clock.now += 1.0  # the next visitor's press counts
    press(rig.factory)
    assert rig.presses == [start, rig.clock.now]


@pytest.mark.parametrize(
    ("now", "last_press", "last_release", "new"),
    [
        (10.0, -float("inf"), -float("inf"), True),  # the first press
        (10.0, 9.8, 9.85, False),  # closer than the bounce to the last press
        (10.0, 8.0, 9.99, False),  # 10 ms after a release: its chatter
        (10.0, 8.0, 9.7, True),  # open for the bounce time: a new press
        (10.0, 9.7, 9.7, True),  # exactly the bounce time
    ],
)
def test_is_new_press(now, last_press, last_release, new):
    assert is_new_press(now, last_press, last_release, 0.3) is new


def test_a_press_pulses_the_chime_relay(rig):
    chime = rig.factory.pin(22)
    assert chime.state == 0
    press(rig.factory)
    assert chime.state == 1
    [(seconds, release)] = rig.scheduled
    assert seconds == 0.5
    release()
    assert chime.state == 0


def test_pir_changes_are_reported_with_their_time(rig):
    """gpiozero samples a MotionSensor on its own thread: wait for its callback."""
    assert rig.pins.pir.value == 0  # nobody there; this also waits for the first sample
    rig.factory.pin(4).drive_high()
    assert rig.pir_seen.wait(5), "no PIR callback"
    rig.pir_seen.clear()
    rig.clock.now += 3
    rig.factory.pin(4).drive_low()
    assert rig.pir_seen.wait(5), "no PIR callback"
    assert rig.pir == [(True, 100.0), (False, 103.0)]


def test_the_led_is_honest(rig):
    led = rig.factory.pin(27)
    rig.pins.set_indicator(recording=True, viewers=0)
    assert led.state == 1
    rig.pins.set_indicator(recording=False, viewers=2)
    assert led.state == 1
    rig.pins.set_indicator(recording=False, viewers=0)
    assert led.state == 0


@pytest.mark.parametrize(
    ("recording", "viewers", "on"), [(False, 0, False), (True, 0, True), (False, 1, True)]
)
def test_indicator_rule(recording, viewers, on):
    assert indicator_on(recording, viewers) is on


def test_pins_that_cannot_be_had_are_a_clear_error():
    """A pin already in use (or no pin library at all) is a DoorbellError with the fix, not
    gpiozero's traceback; whatever was opened is closed again."""
    from doorbell.gpio import GpioError

    factory = MockFactory()
    first = DoorbellPins(GpioSettings(), on_press=lambda at: None, pin_factory=factory)
    with pytest.raises(GpioError, match=r"^GPIO: .*GPIOZERO_PIN_FACTORY=mock"):
        DoorbellPins(GpioSettings(bell_pin=5), on_press=lambda at: None, pin_factory=factory)
    first.close()
    again = DoorbellPins(GpioSettings(bell_pin=5), on_press=lambda at: None, pin_factory=factory)
    again.close()  # pin 5 was released by the failed attempt
