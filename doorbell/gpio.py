"""The wires: bell button, PIR sensor, recording LED and chime relay, via gpiozero.

Wiring (BCM numbers, all configurable):

=======================  ====  =================================================
part                     pin   connect
=======================  ====  =================================================
bell button              17    one leg to GPIO17, the other to GND (internal pull-up)
PIR sensor (optional)    4     OUT to GPIO4, VCC to 5 V, GND to GND
recording LED            27    GPIO27 → 330 Ω → LED anode; cathode to GND
chime relay (optional)   22    the relay module's IN to GPIO22, VCC 5 V, GND
=======================  ====  =================================================

    pins = DoorbellPins(GpioSettings(), on_press=pipeline.press_bell)
    pins.set_indicator(recording=True, viewers=0)   # law 8: the LED tells the truth

Presses are debounced in software (``bounce`` seconds of the injected clock,
:func:`is_new_press`): a real button chatters on press and on release, so a
press counts only when no press was counted in the last ``bounce`` seconds
and the contact had been open, since its last release, for ``bounce``
seconds. A push held for seconds whose contact chatters as it lets go is one
press. gpiozero's own ``bounce_time`` is not used: its mock pins (the tests')
do not emulate it, and on a Pi lgpio's debounce reports a press only after
the level has held for the whole bounce time. Off a Pi, ``GPIOZERO_PIN_FACTORY=mock`` (or passing
``pin_factory=MockFactory()``) gives gpiozero's own mock pins.
"""

import logging
import threading
import time
import warnings
from collections.abc import Callable

from doorbell.config import GpioSettings
from doorbell.errors import DoorbellError

log = logging.getLogger(__name__)


class GpioError(DoorbellError):
    """The pins cannot be used: no pin library, a pin in use, a bad pin number."""


def indicator_on(recording: bool, viewers: int) -> bool:
    """Law 8: the LED is on whenever video is recorded or anyone watches live."""
    return recording or viewers > 0


def is_new_press(now: float, last_press: float, last_release: float, bounce: float) -> bool:
    """Whether a press edge at ``now`` is a new press: none was counted in the last
    ``bounce`` seconds, and the contact was last released ``bounce`` seconds ago or more
    (an edge sooner after a release is the release chattering). Seconds of one clock."""
    return now - last_press >= bounce and now - last_release >= bounce


def _later(seconds: float, action: Callable[[], None]) -> None:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()


class DoorbellPins:
    """The GPIO devices of one doorbell. Callbacks run on gpiozero's threads:
    ``on_press`` and ``on_pir`` must hand over to the event loop themselves."""

    def __init__(
        self,
        settings: GpioSettings,
        *,
        on_press: Callable[[float], None],
        on_pir: Callable[[bool, float], None] = lambda active, at: None,
        clock: Callable[[], float] = time.monotonic,
        later: Callable[[float, Callable[[], None]], None] = _later,
        pin_factory: object = None,
    ) -> None:
        from gpiozero import GPIOZeroError

        self._on_press, self._on_pir = on_press, on_pir
        self._clock, self._later = clock, later
        self._last_press = self._last_release = -float("inf")
        # guards the two times: gpiozero may call from several threads
        self._lock = threading.Lock()
        self.presses = 0
        try:
            with warnings.catch_warnings(record=True) as fallbacks:
                warnings.simplefilter("always")
                self._open(settings, pin_factory)
        except GPIOZeroError as err:
            self.close()
            raise GpioError(
                f"GPIO: {str(err).rstrip('.!')}. On a Raspberry Pi, install python3-lgpio "
                "(scripts/install.sh does); elsewhere set GPIOZERO_PIN_FACTORY=mock for "
                "gpiozero's mock pins, or try `doorbell demo`"
            ) from None
        finally:
            for warning in fallbacks:  # gpiozero's "falling back from lgpio: …"
                log.info("gpiozero: %s", warning.message)

    def _open(self, settings: GpioSettings, pin_factory: object) -> None:
        from gpiozero import LED, Button, MotionSensor, OutputDevice

        self.button = self.pir = self.led = self.chime = None
        self.settings = settings
        self.button = Button(settings.bell_pin, pull_up=True, pin_factory=pin_factory)
        self.button.when_pressed = self._pressed
        self.button.when_released = self._released
        self.pir = None
        if settings.pir_pin is not None:
            # queue_len=1: the PIR module smooths its own output (its hold time).
            self.pir = MotionSensor(settings.pir_pin, queue_len=1, pin_factory=pin_factory)
            self.pir.when_motion = lambda: self._on_pir(True, self._clock())
            self.pir.when_no_motion = lambda: self._on_pir(False, self._clock())
        self.led = (
            LED(settings.led_pin, pin_factory=pin_factory) if settings.led_pin is not None else None
        )
        self.chime = (
            OutputDevice(settings.chime_pin, pin_factory=pin_factory)
            if settings.chime_pin is not None
            else None
        )

    def _pressed(self) -> None:
        now = self._clock()
        with self._lock:
            if not is_new_press(now, self._last_press, self._last_release, self.settings.bounce):
                return
            self._last_press = now
            self.presses += 1
        self.ring_chime()
        self._on_press(now)

    def _released(self) -> None:
        with self._lock:
            self._last_release = self._clock()

    def ring_chime(self) -> None:
        """Pulse the chime relay for ``chime_seconds`` (if there is one)."""
        if self.chime is None:
            return
        self.chime.on()
        self._later(self.settings.chime_seconds, self.chime.off)

    def set_indicator(self, *, recording: bool, viewers: int) -> None:
        if self.led is not None:
            self.led.value = indicator_on(recording, viewers)

    def close(self) -> None:
        for device in (self.button, self.pir, self.led, self.chime):
            if device is not None:
                device.close()
