"""The closed loop (闭环): which action moves an event from which state to which, and who may."""

from __future__ import annotations

from dataclasses import dataclass

from events.rules import EventError, next_level

#: reported → accepted → dispatched → handling → resolved → verified → closed
STATES = ("reported", "accepted", "dispatched", "handling", "resolved", "verified", "closed")
OPEN = frozenset(STATES[:4])
DONE = frozenset(STATES[4:])

#: action → (states it may start from, state it leads to)
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "accept": (frozenset({"reported"}), "accepted"),
    "dispatch": (frozenset({"accepted"}), "dispatched"),
    "start": (frozenset({"dispatched"}), "handling"),
    "resolve": (frozenset({"handling"}), "resolved"),
    "verify": (frozenset({"resolved"}), "verified"),
    "close": (frozenset({"verified"}), "closed"),
    # Reopened work goes back to be dispatched again at the level it is at.
    "reopen": (frozenset({"resolved", "verified", "closed"}), "accepted"),
}


@dataclass(frozen=True)
class Step:
    """The outcome of an action: the new state and level, and what to record."""

    from_status: str
    to_status: str
    level: str
    escalated: bool = False


def apply(action: str, status: str, level: str, *, actor: str, reporter: str | None,
          handler: str | None, new_handler: str | None = None, reason: str | None = None,
          rating: int | None = None) -> Step:
    """Check an action against the rules and say where it leads.

    Rules: collection and handling are separate (采办分离): the reporter never
    handles (dispatches to themself, starts or resolves) their own event, and the
    one who resolved it does not verify it; a reopen and an escalation need a
    reason; escalation climbs one level at a time and only while the event is open.
    """
    if not actor or not actor.strip():
        raise EventError("every step needs an actor: who does it")
    if action == "escalate":
        if status not in OPEN:
            raise EventError(f"only an open event can be escalated; this one is {status}")
        up = next_level(level)
        if up is None:
            raise EventError("the event is already at the department level: there is no "
                             "level above to escalate to")
        if not reason:
            raise EventError("an escalation needs a reason: why the level cannot resolve it")
        return Step(status, "accepted", up, escalated=True)
    if action not in ACTIONS:
        raise EventError(f"unknown action {action!r}; use one of "
                         + ", ".join([*ACTIONS, "escalate"]))
    sources, target = ACTIONS[action]
    if status not in sources:
        raise EventError(f"cannot {action} an event that is {status}; {action} applies to "
                         + " or ".join(sorted(sources)) + " events")
    if action == "dispatch":
        if not new_handler:
            raise EventError("dispatch needs a handler: who will handle the event")
        if reporter and new_handler == reporter:
            raise EventError(f"{new_handler} reported this event and may not handle it "
                             "(采办分离: collection and handling are separate)")
    if action in ("start", "resolve"):
        if handler and actor != handler:
            raise EventError(f"only the handler ({handler}) may {action} this event")
        if reporter and actor == reporter:
            raise EventError(f"{actor} reported this event and may not handle it (采办分离)")
    if action == "verify" and handler and actor == handler:
        raise EventError(f"{actor} handled this event and may not verify it: another person "
                         "checks the result")
    if action == "reopen" and not reason:
        raise EventError("reopening needs a reason: what is still wrong")
    if rating is not None and not 1 <= rating <= 5:
        raise EventError("rating must be 1 to 5")
    return Step(status, target, level)
