"""When to record: a pure state machine from bell, motion, PIR and time to clip actions.

    policy = Policy(pre_roll=5, post_roll=10, max_clip=120)
    state, actions = step(IDLE, Bell(at=30.0), policy)
    # actions == [Start(at=30.0, since=25.0, trigger="bell")]

Nothing here reads a clock, a pin or a file: every input carries its own time
(seconds, any monotonic origin), so tests replay hours in microseconds. The
recorder carries the actions out.

Rules:

* A bell press always gives a clip that begins ``pre_roll`` before it: it
  starts one, extends a bell clip being recorded, or ends a motion or PIR
  clip at the press and starts a bell clip (the few seconds of overlap are
  worth it: "who rang" is the clip an owner looks for).
* Motion starts a clip (unless ``motion_starts`` is off, then it only extends).
  While motion lasts the clip goes on; it ends ``post_roll`` seconds after the
  last activity (motion stop, bell press, PIR) unless more comes.
* PIR: with ``pir="trigger"`` a PIR rising edge acts like motion start; with
  ``pir="confirm"`` camera motion starts a clip only while the PIR is active
  (both must agree: fewer false alarms from shadows and trees); ``"off"``
  ignores it.
* No clip is longer than ``max_clip``: at that length it stops, and if
  activity is still going on a new clip starts at once (with no pre-roll: the
  previous clip has those seconds).
"""

from dataclasses import dataclass, replace
from typing import Literal

from doorbell.config import Policy

Trigger = Literal["bell", "motion", "pir"]


# -- inputs ----------------------------------------------------------------


@dataclass(frozen=True)
class Bell:
    at: float


@dataclass(frozen=True)
class Motion:
    at: float
    active: bool  # True: motion started; False: it stopped


@dataclass(frozen=True)
class Pir:
    at: float
    active: bool


@dataclass(frozen=True)
class Tick:
    at: float


Input = Bell | Motion | Pir | Tick

# -- outputs ---------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Start a clip at ``at`` whose video begins at ``since`` (the pre-roll)."""

    at: float
    since: float
    trigger: Trigger


@dataclass(frozen=True)
class Stop:
    """Finish the clip; its last frame is the one at ``at``."""

    at: float
    reason: Literal["quiet", "max_length", "bell"]


Action = Start | Stop

# -- state -----------------------------------------------------------------


@dataclass(frozen=True)
class State:
    motion: bool = False  # camera motion is going on now
    pir: bool = False  # the PIR output is high now
    clip_start: float | None = None  # when the clip being recorded began (None: idle)
    clip_trigger: Trigger | None = None  # what started it
    quiet_since: float | None = None  # last activity ended here (None: activity ongoing)

    @property
    def recording(self) -> bool:
        return self.clip_start is not None


IDLE = State()


def _active(state: State, policy: Policy) -> bool:
    """Is something going on that keeps a clip open?"""
    return state.motion or (state.pir and policy.pir != "off")


def _wants_start(state: State, event: Input, policy: Policy) -> Trigger | None:
    if isinstance(event, Bell):
        return "bell"
    confirmed = policy.pir != "confirm" or state.pir
    if isinstance(event, Motion) and event.active and policy.motion_starts and confirmed:
        return "motion"
    if isinstance(event, Pir) and event.active:
        if policy.pir == "trigger":
            return "pir"
        if policy.pir == "confirm" and state.motion and policy.motion_starts:
            return "motion"
    return None


def step(state: State, event: Input, policy: Policy) -> tuple[State, list[Action]]:
    """The next state and the actions to take, for one input."""
    now = event.at
    if isinstance(event, Motion):
        state = replace(state, motion=event.active)
    elif isinstance(event, Pir):
        state = replace(state, pir=event.active)
    actions: list[Action] = []

    if state.recording:
        assert state.clip_start is not None
        if now - state.clip_start >= policy.max_clip:
            actions.append(Stop(now, "max_length"))
            if _active(state, policy):
                again: Trigger = "motion" if state.motion else "pir"
                actions.append(Start(now, now, again))
                return replace(state, clip_start=now, clip_trigger=again, quiet_since=None), actions
            return replace(state, clip_start=None, clip_trigger=None, quiet_since=None), actions
        if isinstance(event, Bell) and state.clip_trigger != "bell":
            since = now - policy.pre_roll
            actions += [Stop(now, "bell"), Start(now, since, "bell")]
            quiet = None if _active(state, policy) else now
            return replace(state, clip_start=since, clip_trigger="bell", quiet_since=quiet), actions
        if _active(state, policy):
            return replace(state, quiet_since=None), actions
        quiet_since = state.quiet_since if state.quiet_since is not None else now
        if isinstance(event, Bell):
            quiet_since = now  # a press restarts the post-roll
        if now - quiet_since >= policy.post_roll:
            actions.append(Stop(now, "quiet"))
            return replace(state, clip_start=None, clip_trigger=None, quiet_since=None), actions
        return replace(state, quiet_since=quiet_since), actions

    trigger = _wants_start(state, event, policy)
    if trigger is None:
        return state, actions
    since = now - policy.pre_roll
    actions.append(Start(now, since, trigger))
    quiet = None if _active(state, policy) else now
    return replace(state, clip_start=since, clip_trigger=trigger, quiet_since=quiet), actions


def run(events: list[Input], policy: Policy, state: State = IDLE) -> tuple[State, list[Action]]:
    """Feed ``events`` in order; all the actions, in order (for tests and replay)."""
    out: list[Action] = []
    for event in events:
        state, actions = step(state, event, policy)
        out.extend(actions)
    return state, out
