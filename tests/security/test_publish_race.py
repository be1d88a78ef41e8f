"""Class 2: publishing is exclusive. Concurrent publishes of one territory's plans leave one
published plan (the others get 409); a publish that finds the territory's plans locked says
409 at once; the store itself refuses a second published plan (a partial unique index,
made by migration 0009, which archives the extras an older race left)."""

from __future__ import annotations

# ruff: noqa: F811  (the shared fixtures are imported, then named as arguments)
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from alembic import command
from secworld import World, partitioned, world  # noqa: F401
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from gis.database import alembic_config, make_engine, upgrade
from gis.models.plans import Plan


def _published(world: World) -> list[int]:
    with world.engine.connect() as conn:
        return [int(i) for (i,) in conn.execute(select(Plan.id).where(
            Plan.territory_id == world.territory_id,
            Plan.status == "published"))]


def _copies(world: World, n: int) -> list[int]:
    with world.client() as admin:
        return [admin.post(f"/plans/{world.plan_id}/copy").json()["id"] for _ in range(n)]


@pytest.mark.parametrize("rounds", [3])
def test_concurrent_publishes_leave_one_published_plan(world: World, rounds: int) -> None:
    for _ in range(rounds):
        drafts = _copies(world, 4)
        gate = threading.Barrier(len(drafts))
        with world.client() as planner:

            def publish(plan: int, gate: threading.Barrier = gate) -> int:
                gate.wait()
                return planner.post(f"/plans/{plan}/publish").status_code

            with ThreadPoolExecutor(len(drafts)) as pool:
                codes = list(pool.map(publish, drafts))
        assert set(codes) <= {200, 409}, codes
        assert codes.count(200) >= 1
        published = _published(world)
        assert len(published) == 1, (codes, published)
        assert published[0] in drafts


def test_a_publish_while_the_territory_is_being_published_is_409_at_once(world: World
                                                                          ) -> None:
    draft = _copies(world, 1)[0]
    if world.backend == "postgis":
        # Another session holds the territory's plans, as a publish does.
        with psycopg.connect(world.url.replace("postgresql+psycopg", "postgresql")) as other:
            other.execute("SELECT id FROM plans WHERE territory_id = %s FOR UPDATE",
                          (world.territory_id,))
            with world.client() as planner:
                answer = planner.post(f"/plans/{draft}/publish")
            other.rollback()
    else:
        from gis import plans

        plans._publishing.add(world.territory_id)   # a publish under way in this process
        try:
            with world.client() as planner:
                answer = planner.post(f"/plans/{draft}/publish")
        finally:
            plans._publishing.discard(world.territory_id)
    assert answer.status_code == 409, answer.text
    assert "being published" in answer.json()["detail"]
    assert _published(world) == [world.plan_id]
    with world.client() as planner:
        assert planner.post(f"/plans/{draft}/publish").status_code == 200
    assert _published(world) == [draft]


def test_the_store_refuses_a_second_published_plan(world: World) -> None:
    draft = _copies(world, 1)[0]
    with pytest.raises(IntegrityError), world.engine.begin() as conn:
        conn.execute(update(Plan).where(Plan.id == draft)
                     .values(status="published"))
    assert _published(world) == [world.plan_id]


def test_the_migration_archives_extra_published_plans(world: World) -> None:
    drafts = _copies(world, 2)
    engine = make_engine(world.url)
    try:
        command.downgrade(alembic_config(engine), "0008")
        with engine.begin() as conn:
            conn.execute(text("UPDATE plans SET status = 'published' WHERE id IN (:a, :b)"),
                         {"a": drafts[0], "b": drafts[1]})
        upgrade(engine)
    finally:
        engine.dispose()
    assert _published(world) == [max(drafts)]
