"""Events moved through the workflow in the store: a step with its history line, overdue
escalation, an audited re-route under a newer plan."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from events.rules import LEVELS, Rules
from events.store import EVENT, get_event, in_areas
from events.workflow import OPEN, apply
from gis.errors import NotFound
from gis.models.events import Event, EventHistory


def transition(engine: Engine, event_id: int, action: str, *, actor: str, rules: Rules,
               now: datetime, reason: str | None = None, handler: str | None = None,
               rating: int | None = None, feedback: str | None = None) -> dict[str, Any]:
    """Apply one workflow action (or ``escalate``) and record who, when and why."""
    with engine.begin() as conn:
        query = select(EVENT.c.id, EVENT.c.status, EVENT.c.level, EVENT.c.reporter,
                       EVENT.c.handler, EVENT.c.category).where(EVENT.c.id == event_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no event {event_id}")
        step = apply(action, row.status, row.level, actor=actor, reporter=row.reporter,
                     handler=row.handler, new_handler=handler, reason=reason, rating=rating)
        values: dict[str, Any] = {"status": step.to_status, "level": step.level}
        if step.escalated:
            values.update(level_since=now, handler=None,
                          deadline_at=rules.deadline(row.category, step.level, now))
        if action == "dispatch":
            values["handler"] = handler
        if action == "resolve":
            values["resolved_at"] = now
        if action == "close":
            values.update(closed_at=now, rating=rating, feedback=feedback)
        if action == "reopen":
            values.update(resolved_at=None, closed_at=None, handler=None)
        conn.execute(update(Event).where(Event.id == event_id).values(**values))
        conn.execute(insert(EventHistory).values(
            event_id=event_id, from_status=row.status, to_status=step.to_status,
            level=step.level, actor=actor, at=now,
            reason=reason or (f"{action}: {handler}" if handler else action)))
    return get_event(engine, event_id)


def escalate_overdue(engine: Engine, rules: Rules, now: datetime,
                     territory_id: int | None = None,
                     areas: tuple[str, ...] | None = None) -> list[int]:
    """Escalate, one level, every open event whose time at its level ran out (``areas``:
    only within these codes)."""
    query = in_areas(select(EVENT.c.id, EVENT.c.level), areas).where(
        EVENT.c.status.in_(sorted(OPEN)), EVENT.c.deadline_at < now,
        EVENT.c.level != LEVELS[-1])
    if territory_id is not None:
        query = query.where(EVENT.c.territory_id == territory_id)
    with engine.connect() as conn:
        due = [(int(i), str(lv)) for i, lv in conn.execute(query)]
    for event_id, level in due:
        transition(engine, event_id, "escalate", actor="system 系统", rules=rules, now=now,
                   reason=f"time limit at level {level} ran out (超时自动上报)")
    return [i for i, _ in due]


def reroute(engine: Engine, event_id: int, routed: dict[str, Any], *, actor: str,
            reason: str, now: datetime) -> dict[str, Any]:
    """Route an event again under a newer plan: an explicit, audited change."""
    with engine.begin() as conn:
        row = conn.execute(select(EVENT.c.status, EVENT.c.level, EVENT.c.grid_code,
                                  EVENT.c.plan_id).where(EVENT.c.id == event_id)).first()
        if row is None:
            raise NotFound(f"no event {event_id}")
        conn.execute(update(Event).where(Event.id == event_id).values(**routed))
        conn.execute(insert(EventHistory).values(
            event_id=event_id, from_status=row.status, to_status=row.status, level=row.level,
            actor=actor, at=now,
            reason=f"re-routed from grid {row.grid_code} (plan {row.plan_id}) to grid "
                   f"{routed.get('grid_code')} (plan {routed.get('plan_id')}): {reason}"))
    return get_event(engine, event_id)


__all__ = ["escalate_overdue", "reroute", "transition"]
