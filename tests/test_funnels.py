"""Funnels: validation, ordering, windows, ties, identity, breakdowns, on events written
through the real write path."""

from __future__ import annotations

from typing import Any

import pytest

from collector.errors import InvalidRequest
from collector.query.funnels import NO_VALUE, parse_funnel_query, run_funnel
from collector.store import Store
from tests.test_segments import DAY, NOW, ev

STEPS = ["signup_completed", "onboarding_started", "onboarding_completed"]


@pytest.fixture
def app_id(store: Store) -> str:
    return store.create_app("Funnels", ["http://localhost"], {}).app_id


def funnel(store: Store, app_id: str, **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = run_funnel(store, app_id, parse_funnel_query({"steps": STEPS, **body}))
    return result


def users(result: dict[str, Any]) -> list[int]:
    return [step["users"] for step in result["steps"]]


# Validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("steps", "body"),
        ({}, "steps"),
        ({"steps": ["a"]}, "steps"),
        ({"steps": "a,b"}, "steps"),
        ({"steps": ["a"] * 21}, "steps"),
        ({"steps": ["a", ""]}, "steps[1]"),
        ({"steps": ["a", 3]}, "steps[1]"),
        ({"steps": ["a", {"name": "b"}]}, "steps[1].name"),
        ({"steps": ["a", {"where": {}}]}, "steps[1].event"),
        (
            {"steps": ["a", {"event": "b", "where": {"plan": {"in": "pro"}}}]},
            "steps[1].where.plan.in",
        ),
        ({"steps": ["a", "b"], "within_days": 0}, "within_days"),
        ({"steps": ["a", "b"], "within_days": "7"}, "within_days"),
        ({"steps": ["a", "b"], "since": "last week"}, "since"),
        ({"steps": ["a", "b"], "since": NOW, "until": NOW}, "until"),
        ({"steps": ["a", "b"], "breakdown": 3}, "breakdown"),
        ({"steps": ["a", "b"], "breakdown": ""}, "breakdown"),
        ({"steps": ["a", "b"], "include_bots": 1}, "include_bots"),
        ({"steps": ["a", "b"], "window": 7}, "window"),
    ],
)
def test_malformed_funnels_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_funnel_query(body)
    assert field in [e["field"] for e in info.value.errors]


# Matching -----------------------------------------------------------------------------------


def test_conversions_and_median_times(store: Store, app_id: str) -> None:
    t = NOW - 10 * DAY
    events = []
    for i in range(4):  # all sign up; three start onboarding; one completes
        events.append(ev(app_id, "signup_completed", t, user=f"u{i}"))
        if i < 3:
            events.append(ev(app_id, "onboarding_started", t + (i + 1) * 60_000, user=f"u{i}"))
        if i == 0:
            events.append(ev(app_id, "onboarding_completed", t + 3_600_000, user=f"u{i}"))
    store.write(events)
    result = funnel(store, app_id, within_days=7)
    assert result["steps"] == [
        {
            "event": "signup_completed",
            "users": 4,
            "conversion_from_first": 1.0,
            "conversion_from_previous": 1.0,
            "median_seconds_from_previous": None,
        },
        {
            "event": "onboarding_started",
            "users": 3,
            "conversion_from_first": 0.75,
            "conversion_from_previous": 0.75,
            "median_seconds_from_previous": 120.0,
        },
        {
            "event": "onboarding_completed",
            "users": 1,
            "conversion_from_first": 0.25,
            "conversion_from_previous": 0.3333,
            "median_seconds_from_previous": 3540.0,
        },
    ]
    assert result["breakdown"] is None


def test_steps_must_come_in_order(store: Store, app_id: str) -> None:
    store.write(
        [
            ev(app_id, "onboarding_started", NOW - 2 * DAY, user="u"),
            ev(app_id, "signup_completed", NOW - DAY, user="u"),
            ev(app_id, "onboarding_completed", NOW, user="u"),
        ]
    )
    assert users(funnel(store, app_id)) == [1, 0, 0]


def test_window_counts_from_the_first_step_inclusive(store: Store, app_id: str) -> None:
    start = NOW - 30 * DAY
    store.write(
        [
            ev(app_id, "signup_completed", start, user="edge"),
            ev(app_id, "onboarding_started", start + DAY, user="edge"),
            ev(app_id, "onboarding_completed", start + 7 * DAY, user="edge"),  # on the edge
            ev(app_id, "signup_completed", start, user="late"),
            ev(app_id, "onboarding_started", start + DAY, user="late"),
            ev(app_id, "onboarding_completed", start + 7 * DAY + 1, user="late"),
        ]
    )
    assert users(funnel(store, app_id, within_days=7)) == [2, 2, 1]


def test_identical_timestamps_count_in_order_but_once_each(store: Store, app_id: str) -> None:
    store.write(
        [
            # Written in reverse order, all in the same millisecond: still a conversion.
            ev(app_id, "onboarding_completed", NOW, user="tie"),
            ev(app_id, "onboarding_started", NOW, user="tie"),
            ev(app_id, "signup_completed", NOW, user="tie"),
        ]
    )
    assert users(funnel(store, app_id)) == [1, 1, 1]
    # A repeated step needs a second occurrence.
    store.write([ev(app_id, "page_viewed", NOW, user="once")])
    store.write([ev(app_id, "page_viewed", NOW, user="twice") for _ in range(2)])
    twice = run_funnel(store, app_id, parse_funnel_query({"steps": ["page_viewed", "page_viewed"]}))
    assert users(twice) == [2, 1]


def test_the_attempt_that_gets_furthest_wins(store: Store, app_id: str) -> None:
    start = NOW - 60 * DAY
    store.write(
        [
            ev(app_id, "signup_completed", start, user="u", props={"plan": "free"}),
            ev(app_id, "signup_completed", start + 20 * DAY, user="u", props={"plan": "pro"}),
            ev(app_id, "onboarding_started", start + 21 * DAY, user="u"),
            ev(app_id, "onboarding_completed", start + 22 * DAY, user="u"),
        ]
    )
    result = funnel(store, app_id, within_days=7, breakdown="plan")
    assert users(result) == [1, 1, 1]
    assert result["steps"][1]["median_seconds_from_previous"] == 86_400.0
    # The breakdown value comes from the winning attempt's first event.
    assert list(result["breakdown"]) == ["pro"]


def test_anonymous_steps_before_login_count(store: Store, app_id: str) -> None:
    store.write(
        [
            ev(app_id, "signup_completed", NOW - 3 * DAY, anon="a1"),
            ev(app_id, "onboarding_started", NOW - 2 * DAY, anon="a1"),
        ]
    )
    store.write([ev(app_id, "onboarding_completed", NOW - DAY, user="u", anon="a1")])
    assert users(funnel(store, app_id)) == [1, 1, 1]


def test_since_until_bound_the_first_step_only(store: Store, app_id: str) -> None:
    store.write(
        [
            ev(app_id, "signup_completed", NOW - 10 * DAY, user="before"),
            ev(app_id, "signup_completed", NOW - 5 * DAY, user="inside"),
            ev(app_id, "onboarding_started", NOW - DAY, user="inside"),  # after `until`
            ev(app_id, "signup_completed", NOW - 2 * DAY, user="after"),
        ]
    )
    result = funnel(store, app_id, since=NOW - 6 * DAY, until=NOW - 3 * DAY)
    assert users(result) == [1, 1, 0]


def test_step_filters_and_breakdown(store: Store, app_id: str) -> None:
    store.write(
        [
            ev(app_id, "signup_completed", NOW, user="p1", props={"plan": "pro"}),
            ev(app_id, "signup_completed", NOW, user="p2", props={"plan": "pro"}),
            ev(app_id, "signup_completed", NOW, user="f1", props={"plan": "free"}),
            ev(app_id, "signup_completed", NOW, user="n1"),
            ev(app_id, "signup_completed", NOW, user="t1", props={"plan": True}),
            ev(app_id, "export_completed", NOW + 1, user="p1", props={"format": "csv"}),
            ev(app_id, "export_completed", NOW + 1, user="p2", props={"format": "pdf"}),
            ev(app_id, "export_completed", NOW + 1, user="f1", props={"format": "csv"}),
        ]
    )
    steps = ["signup_completed", {"event": "export_completed", "where": {"format": "csv"}}]
    result = run_funnel(store, app_id, parse_funnel_query({"steps": steps, "breakdown": "plan"}))
    assert users(result) == [5, 2]
    assert result["steps"][1]["where"] == {"format": "csv"}
    by_plan = {value: users(b) for value, b in result["breakdown"].items()}
    assert by_plan == {"pro": [2, 1], "free": [1, 1], NO_VALUE: [1, 0], "true": [1, 0]}
    assert list(result["breakdown"]) == ["pro", NO_VALUE, "free", "true"]  # biggest first


def test_bots_are_left_out_unless_asked(store: Store, app_id: str) -> None:
    store.write(
        [
            ev(app_id, "signup_completed", NOW, anon="crawler", bot=True),
            ev(app_id, "signup_completed", NOW, user="human"),
            ev(app_id, "onboarding_started", NOW, user="human", bot=True),
        ]
    )
    assert users(funnel(store, app_id)) == [1, 0, 0]
    assert users(funnel(store, app_id, include_bots=True)) == [2, 1, 0]


def test_empty_funnel(store: Store, app_id: str) -> None:
    result = funnel(store, app_id, breakdown="plan")
    assert users(result) == [0, 0, 0]
    assert result["steps"][1]["conversion_from_first"] == 0.0
    assert result["breakdown"] == {}


def test_deleted_user_leaves_the_funnel(store: Store, app_id: str) -> None:
    store.write([ev(app_id, s, NOW + i, user="gone") for i, s in enumerate(STEPS)])
    store.write([ev(app_id, "signup_completed", NOW, user="stays")])
    store.delete_user(app_id, "gone")
    assert users(funnel(store, app_id)) == [1, 0, 0]
