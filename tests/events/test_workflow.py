"""The events domain on both backends: closed loop, escalation, lights, idempotency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from events.rules import LEVELS, EventError, Rules
from events.store import (
    count_events,
    create_event,
    escalate_overdue,
    event_light,
    get_event,
    light_counts,
    reroute,
    transition,
)
from events.workflow import apply
from gis.models.events import EventHistory
from gis.models.territories import Territory

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
RULES = Rules()


def territory(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(Territory).values(
            name="t", metric_epsg=4547, created_at=T0).returning(Territory.id))
            .scalar_one())


def fields(tid: int, **extra: Any) -> dict[str, Any]:
    base = {"territory_id": tid, "grid_code": "440111001001001", "village_code": "440111001001",
            "town_code": "440111001", "district_code": "440111", "distance_m": 0.0,
            "category": "sanitation", "source": "patrol", "description": "垃圾堆放",
            "reporter": "张三", "reported_at": T0, "coord_sys": "wgs84", "x": 113.3,
            "y": 23.2, "flags": []}
    return {**base, **extra}


def test_rules_lights_across_time() -> None:
    limit = RULES.limit("sanitation", "grid")
    assert limit == timedelta(hours=24)
    deadline = RULES.deadline("sanitation", "grid", T0)
    assert RULES.light(deadline, limit, T0) == "green"
    # Yellow in the last 20% of 24 h: from 19 h 12 min.
    assert RULES.light(deadline, limit, T0 + timedelta(hours=19, minutes=12)) == "yellow"
    assert RULES.light(deadline, limit, T0 + timedelta(hours=19, minutes=11)) == "green"
    assert RULES.light(deadline, limit, T0 + timedelta(hours=24)) == "yellow"
    assert RULES.light(deadline, limit, T0 + timedelta(hours=24, seconds=1)) == "red"
    # A finished event keeps the colour it finished with.
    assert RULES.light(deadline, limit, T0 + timedelta(days=9),
                       closed_at=T0 + timedelta(hours=23)) == "green"
    assert RULES.light(deadline, limit, T0 + timedelta(days=9),
                       closed_at=T0 + timedelta(hours=25)) == "red"
    with pytest.raises(EventError, match="unknown category 'fire'"):
        RULES.limit("fire", "grid")
    half = Rules(yellow_share=0.5)
    assert half.light(deadline, limit, T0 + timedelta(hours=13)) == "yellow"


def test_rules_from_a_file(tmp_path: Any) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"noise": {"grid": 1, "station": 2, "town": 3, "district": 4, '
                    '"department": 5}}', encoding="utf-8")
    rules = Rules.load(path)
    assert rules.limit("noise", "town") == timedelta(hours=3)
    path.write_text('{"noise": {"grid": 1}}', encoding="utf-8")
    with pytest.raises(Exception, match="station"):
        Rules.load(path)


def test_workflow_rules_without_a_database() -> None:
    step = apply("accept", "reported", "grid", actor="站长", reporter="张三", handler=None)
    assert step.to_status == "accepted"
    with pytest.raises(EventError, match="采办分离"):
        apply("dispatch", "accepted", "grid", actor="站长", reporter="张三", handler=None,
              new_handler="张三")
    with pytest.raises(EventError, match="cannot resolve an event that is reported"):
        apply("resolve", "reported", "grid", actor="李四", reporter="张三", handler=None)
    with pytest.raises(EventError, match="only the handler"):
        apply("resolve", "handling", "grid", actor="王五", reporter="张三", handler="李四")
    with pytest.raises(EventError, match="may not verify"):
        apply("verify", "resolved", "grid", actor="李四", reporter="张三", handler="李四")
    with pytest.raises(EventError, match="reason"):
        apply("escalate", "accepted", "grid", actor="李四", reporter=None, handler=None)
    with pytest.raises(EventError, match="department level"):
        apply("escalate", "accepted", "department", actor="x", reporter=None, handler=None,
              reason="r")
    with pytest.raises(EventError, match="only an open event"):
        apply("escalate", "closed", "grid", actor="x", reporter=None, handler=None,
              reason="r")
    with pytest.raises(EventError, match="actor"):
        apply("accept", "reported", "grid", actor=" ", reporter=None, handler=None)
    with pytest.raises(EventError, match="unknown action"):
        apply("delete", "reported", "grid", actor="x", reporter=None, handler=None)


def test_the_closed_loop_with_history(engine: Engine) -> None:
    tid = territory(engine)
    event = create_event(engine, fields(tid), 113.3, 23.2, RULES).event
    assert event["status"] == "reported" and event["level"] == "grid"
    assert event["deadline_at"] == (T0 + timedelta(hours=24)).isoformat()
    eid = event["id"]
    t = T0
    for action, actor, extra in (
            ("accept", "站长", {}), ("dispatch", "站长", {"handler": "李四"}),
            ("start", "李四", {}), ("resolve", "李四", {}), ("verify", "王五", {}),
            ("close", "王五", {"rating": 5, "feedback": "满意"})):
        t += timedelta(hours=1)
        event = transition(engine, eid, action, actor=actor, rules=RULES, now=t, **extra)
    assert event["status"] == "closed" and event["handler"] == "李四"
    assert event["rating"] == 5 and event["feedback"] == "满意"
    history = event["history"]
    assert [h["to_status"] for h in history] == [
        "reported", "accepted", "dispatched", "handling", "resolved", "verified", "closed"]
    assert [h["actor"] for h in history][1:] == ["站长", "站长", "李四", "李四", "王五", "王五"]
    assert event_light(event, RULES, T0 + timedelta(days=30)) == "green"   # on time
    # Reopen needs a reason, and sends it back to be dispatched.
    with pytest.raises(EventError, match="reason"):
        transition(engine, eid, "reopen", actor="张三", rules=RULES, now=t)
    event = transition(engine, eid, "reopen", actor="张三", rules=RULES, now=t,
                       reason="垃圾又出现了")
    assert event["status"] == "accepted" and event["handler"] is None
    assert event["closed_at"] is None and event["history"][-1]["reason"] == "垃圾又出现了"
    # A refused step writes nothing.
    before = len(event["history"])
    with pytest.raises(EventError):
        transition(engine, eid, "close", actor="王五", rules=RULES, now=t)
    assert len(get_event(engine, eid)["history"]) == before


def test_escalation_one_level_at_a_time_manual_and_on_time_out(engine: Engine) -> None:
    tid = territory(engine)
    eid = create_event(engine, fields(tid, category="safety_hazard"), 113.3, 23.2,
                       RULES).event["id"]
    # Manual: the grid cannot solve it.
    e = transition(engine, eid, "escalate", actor="李四", rules=RULES,
                   now=T0 + timedelta(hours=1), reason="需要社区协调")
    assert e["level"] == "station" and e["status"] == "accepted"
    assert e["deadline_at"] == (T0 + timedelta(hours=1 + 8)).isoformat()
    # Automatic: nothing happens before the deadline, one level after it.
    assert escalate_overdue(engine, RULES, T0 + timedelta(hours=8)) == []
    assert escalate_overdue(engine, RULES, T0 + timedelta(hours=9, minutes=1)) == [eid]
    e = get_event(engine, eid)
    assert e["level"] == "town" and "超时" in e["history"][-1]["reason"]
    assert e["history"][-1]["actor"].startswith("system")
    # Up to the department, and no further.
    now = T0 + timedelta(hours=10)
    for _ in range(5):
        now += timedelta(days=10)
        escalate_overdue(engine, RULES, now)
    e = get_event(engine, eid)
    assert e["level"] == LEVELS[-1]
    assert [h["level"] for h in e["history"]] == ["grid", *LEVELS[1:]]
    assert event_light(e, RULES, now) == "red"


def test_counts_by_light_and_on_time_rate(engine: Engine) -> None:
    tid = territory(engine)
    ids = []
    for i, grid in enumerate(["440111001001001", "440111001001001", "440111001001002"]):
        ids.append(create_event(engine, fields(tid, grid_code=grid,
                                               reported_at=T0 + timedelta(hours=i * 10)),
                                113.3, 23.2, RULES).event["id"])
    now = T0 + timedelta(hours=26)   # first: 2 h overdue; second: 8 h left of 24 → green
    counts = light_counts(engine, RULES, now, by="grid", territory_id=tid)
    assert counts["440111001001001"]["red"] == 1 and counts["440111001001001"]["green"] == 1
    assert counts["440111001001002"]["green"] == 1
    # Resolve the second in time and the first late.
    for eid, at in ((ids[1], T0 + timedelta(hours=20)), (ids[0], T0 + timedelta(hours=30))):
        transition(engine, eid, "accept", actor="站长", rules=RULES, now=at)
        transition(engine, eid, "dispatch", actor="站长", rules=RULES, now=at, handler="李四")
        transition(engine, eid, "start", actor="李四", rules=RULES, now=at)
        transition(engine, eid, "resolve", actor="李四", rules=RULES, now=at)
    village = light_counts(engine, RULES, T0 + timedelta(hours=40), by="village")
    group = village["440111001001"]
    assert group["open"] == 1 and group["resolved"] == 2 and group["on_time_rate"] == 0.5
    assert group["yellow"] + group["red"] + group["green"] == 1


def test_idempotency_under_concurrent_retries(engine: Engine) -> None:
    tid = territory(engine)
    results: list[Any] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            results.append(create_event(engine, fields(tid, idempotency_key="abc-123"),
                                        113.3, 23.2, RULES))
        except BaseException as exc:  # collected: the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert count_events(engine, tid) == 1
    assert sum(r.created for r in results) == 1
    assert len({r.event["id"] for r in results}) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EventHistory)
                            ).scalar_one() == 0  # the report is the event's own row
    assert [h["to_status"] for h in results[0].event["history"]] == ["reported"]


def test_reroute_is_explicit_and_audited(engine: Engine) -> None:
    tid = territory(engine)
    eid = create_event(engine, fields(tid, plan_id=None), 113.3, 23.2, RULES).event["id"]
    e = reroute(engine, eid, {"grid_code": "440111001001009", "plan_id": None},
                actor="管理员", reason="新方案发布", now=T0 + timedelta(days=1))
    assert e["grid_code"] == "440111001001009"
    assert "re-routed from grid 440111001001001" in e["history"][-1]["reason"]
    assert e["status"] == "reported"
