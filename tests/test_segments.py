"""Segments: the rules language (validation with field paths) and what each condition
selects, on events written through the real write path (identity resolution included)."""

from __future__ import annotations

from typing import Any

import pytest

from collector.errors import InvalidRequest
from collector.query.segments import MAX_CONDITIONS, MAX_DEPTH, parse_segment_query
from collector.query.types import SegmentPage
from collector.store import Store
from tests.factories import DAY, ev

NOW = 1_790_000_000_000  # 2026-09-21: `as_of` of every query here


def segment(
    store: Store, app_id: str, conditions: list[Any], match: str = "all", **extra: Any
) -> SegmentPage:
    body = {"match": match, "conditions": conditions, "limit": 1000, **extra}
    return store.segment(app_id, parse_segment_query(body, NOW))


def people(page: SegmentPage) -> set[str]:
    """Users by id, anonymous visitors as anon:ID."""
    return {u["id"] if u["id"] is not None else "anon:" + u["anonymous_id"] for u in page.users}


@pytest.fixture
def app_id(store: Store) -> str:
    return store.create_app("Segments", ["http://localhost"], {}).app_id


# Validation -------------------------------------------------------------------------------


def _fields(body: Any) -> list[str]:
    with pytest.raises(InvalidRequest) as info:
        parse_segment_query(body, NOW)
    assert info.value.status == 400
    return [e["field"] for e in info.value.errors]


HAS = {"has_done": {"event": "a"}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"match": "all"}, "conditions"),
        ({"conditions": "x"}, "conditions"),
        (
            {"conditions": [HAS, HAS, {"count": {"event": "e", "gt": "ten"}}]},
            "conditions[2].count.gt",
        ),
        ({"conditions": [{"count": {"event": "e", "gt": -1}}]}, "conditions[0].count.gt"),
        ({"conditions": [{"count": {"event": "e", "eq": 1.5}}]}, "conditions[0].count.eq"),
        ({"conditions": [{"count": {"event": "e", "gt": True}}]}, "conditions[0].count.gt"),
        ({"conditions": [{"count": {"event": "e"}}]}, "conditions[0].count"),
        (
            {"conditions": [{"count": {"event": "e", "gt": 1, "more": 2}}]},
            "conditions[0].count.more",
        ),
        ({"conditions": [{"did": {"event": "a"}}]}, "conditions[0]"),
        ({"conditions": [{"has_done": {"event": "a"}, "trait": {}}]}, "conditions[0]"),
        ({"conditions": ["has_done"]}, "conditions[0]"),
        ({"conditions": [{"has_done": {}}]}, "conditions[0].has_done.event"),
        ({"conditions": [{"has_done": {"event": ""}}]}, "conditions[0].has_done.event"),
        ({"conditions": [{"has_done": "a"}]}, "conditions[0].has_done"),
        (
            {"conditions": [{"first_done_within": {"event": "a"}}]},
            "conditions[0].first_done_within.days",
        ),
        (
            {"conditions": [{"last_done_within": {"event": "a", "days": 0}}]},
            "conditions[0].last_done_within.days",
        ),
        (
            {"conditions": [{"last_done_within": {"event": "a", "days": "7"}}]},
            "conditions[0].last_done_within.days",
        ),
        (
            {"conditions": [{"has_done": {"event": "a", "within_days": -1}}]},
            "conditions[0].has_done.within_days",
        ),
        (
            {"conditions": [{"has_done": {"event": "a", "where": []}}]},
            "conditions[0].has_done.where",
        ),
        (
            {"conditions": [{"has_done": {"event": "a", "where": {"plan": ["x"]}}}]},
            "conditions[0].has_done.where.plan",
        ),
        (
            {"conditions": [{"has_done": {"event": "a", "where": {"plan": {"like": "x"}}}}]},
            "conditions[0].has_done.where.plan.like",
        ),
        (
            {"conditions": [{"has_done": {"event": "a", "where": {"plan": {}}}}]},
            "conditions[0].has_done.where.plan",
        ),
        (
            {"conditions": [{"has_done": {"event": "a", "where": {"plan": {"in": ["a", {}]}}}}]},
            "conditions[0].has_done.where.plan.in[1]",
        ),
        (
            {"conditions": [{"has_done": {"event": "a", "where": {"plan": {"in": "a"}}}}]},
            "conditions[0].has_done.where.plan.in",
        ),
        (
            {"conditions": [{"has_done": {"event": "a", "where": {"n": {"gt": None}}}}]},
            "conditions[0].has_done.where.n.gt",
        ),
        (
            {"conditions": [{"has_done": {"event": "a", "where": {"n": {"exists": 1}}}}]},
            "conditions[0].has_done.where.n.exists",
        ),
        (
            {"conditions": [{"has_done": {"event": "a", "where": {'a"b': 1}}}]},
            "conditions[0].has_done.where",
        ),
        ({"conditions": [{"trait": {"eq": "pro"}}]}, "conditions[0].trait.key"),
        ({"conditions": [{"trait": {"key": "plan"}}]}, "conditions[0].trait"),
        ({"conditions": [{"trait": {"key": "plan", "is": "pro"}}]}, "conditions[0].trait.is"),
        ({"conditions": [{"match": "some", "conditions": []}]}, "conditions[0].match"),
        ({"conditions": [{"match": "any"}]}, "conditions[0].conditions"),
        (
            {"conditions": [{"match": "any", "conditions": [HAS, {"has_done": {}}]}]},
            "conditions[0].conditions[1].has_done.event",
        ),
        ({"conditions": [{"match": "any", "conditions": [], "limit": 3}]}, "conditions[0].limit"),
        ({"conditions": [{"not": {"has_done": {"event": 1}}}]}, "conditions[0].not.has_done.event"),
        ({"conditions": [], "foo": 1}, "foo"),
        ({"conditions": [], "limit": 0}, "limit"),
        ({"conditions": [], "limit": 1001}, "limit"),
        ({"conditions": [], "limit": "ten"}, "limit"),
        ({"conditions": [], "include_bots": "yes"}, "include_bots"),
        ({"conditions": [], "as_of": "yesterday"}, "as_of"),
        ({"conditions": [], "cursor": "%%%"}, "cursor"),
        ({"conditions": [], "cursor": 5}, "cursor"),
    ],
)
def test_malformed_rules_name_the_field(body: Any, field: str) -> None:
    assert field in _fields(body)


def test_every_problem_is_reported_at_once() -> None:
    body = {
        "match": "every",
        "conditions": [
            {"count": {"event": "e", "gt": -1}},
            {"last_done_within": {"event": "", "days": 0}},
            {"trait": {"key": "plan", "eq": [1]}},
        ],
        "limit": 0,
    }
    assert _fields(body) == [
        "match",
        "conditions[0].count.gt",
        "conditions[1].last_done_within.event",
        "conditions[1].last_done_within.days",
        "conditions[2].trait.eq",
        "limit",
    ]


def test_nesting_and_size_are_bounded() -> None:
    deep: dict[str, Any] = {"conditions": [HAS]}
    for _ in range(MAX_DEPTH + 1):
        deep = {"match": "any", "conditions": [deep]}
    assert any("nest" in e for e in _messages({"conditions": [deep]}))
    many = {"conditions": [HAS] * (MAX_CONDITIONS + 1)}
    assert _fields(many) == [f"conditions[{MAX_CONDITIONS}]"]


def _messages(body: Any) -> list[str]:
    with pytest.raises(InvalidRequest) as info:
        parse_segment_query(body, NOW)
    return [e["message"] for e in info.value.errors]


def test_a_cursor_only_continues_its_own_query(store: Store, app_id: str) -> None:
    store.write([ev(app_id, "a", NOW - i, user=f"u{i}") for i in range(3)])
    body = {"conditions": [HAS], "limit": 1}
    page = store.segment(app_id, parse_segment_query(body, NOW))
    assert page.last is not None
    from collector.query.segments import next_cursor

    cursor = next_cursor(parse_segment_query(body, NOW), page.last)
    other = {"conditions": [{"has_done": {"event": "b"}}], "cursor": cursor}
    assert _messages(other) == ["belongs to a different query"]


# What conditions select ----------------------------------------------------------------------


def test_has_done_and_has_not_done_follow_identity(store: Store, app_id: str) -> None:
    # The seed's feature-adoption campaign: viewed the advanced export, never used it.
    store.write(
        [
            # Before logging in: anonymous, then linked by an identify call.
            ev(app_id, "advanced_export_viewed", NOW - 3 * DAY, anon="a1"),
            ev(app_id, "identify", NOW - 2 * DAY, user="alice", anon="a1", traits={"plan": "pro"}),
            ev(app_id, "advanced_export_viewed", NOW - DAY, user="bob"),
            ev(app_id, "advanced_export_used", NOW - DAY, user="bob"),
            ev(app_id, "advanced_export_viewed", NOW - DAY, anon="a2"),  # never logs in
        ]
    )
    rules = [
        {"has_done": {"event": "advanced_export_viewed"}},
        {"has_not_done": {"event": "advanced_export_used"}},
    ]
    page = segment(store, app_id, rules)
    assert people(page) == {"alice", "anon:a2"}
    assert page.count == 2
    alice = next(u for u in page.users if u["id"] == "alice")
    assert alice["anonymous_id"] is None
    assert alice["traits"] == {"plan": "pro"}
    # First seen is the anonymous visit, not the identify call.
    assert alice["first_seen"] == "2026-09-18T14:13:20.000Z"
    visitor = next(u for u in page.users if u["id"] is None)
    assert visitor == {
        "id": None,
        "anonymous_id": "a2",
        "traits": {},
        "first_seen": "2026-09-20T14:13:20.000Z",
        "last_seen": "2026-09-20T14:13:20.000Z",
    }


def test_anonymous_events_linked_later_move_to_the_user(store: Store, app_id: str) -> None:
    store.write([ev(app_id, "export_completed", NOW - i, anon="a1") for i in range(3)])
    assert people(segment(store, app_id, [{"count": {"event": "export_completed", "eq": 3}}])) == {
        "anon:a1"
    }
    # A later batch: an event carrying both ids links them; the past follows.
    store.write([ev(app_id, "export_completed", NOW, user="carol", anon="a1")])
    page = segment(store, app_id, [{"count": {"event": "export_completed", "eq": 4}}])
    assert people(page) == {"carol"}
    assert segment(store, app_id, []).count == 1


def test_identified_users_without_events_are_in_scope(store: Store, app_id: str) -> None:
    store.write([ev(app_id, "identify", NOW, user="quiet", traits={"plan": "free"})])
    store.write([ev(app_id, "signup_completed", NOW, user="busy")])
    assert people(segment(store, app_id, [{"has_not_done": {"event": "signup_completed"}}])) == {
        "quiet"
    }
    assert people(segment(store, app_id, [])) == {"quiet", "busy"}


def test_count_comparisons_and_zero(store: Store, app_id: str) -> None:
    events = [ev(app_id, "export_completed", NOW - i, user="power") for i in range(11)]
    events += [ev(app_id, "export_completed", NOW - i, user="some") for i in range(10)]
    events += [ev(app_id, "page_viewed", NOW, user="none")]
    store.write(events)

    def count(**cmp: int) -> set[str]:
        return people(segment(store, app_id, [{"count": {"event": "export_completed", **cmp}}]))

    assert count(gt=10) == {"power"}
    assert count(gte=10) == {"power", "some"}
    assert count(eq=10) == {"some"}
    assert count(lte=10) == {"some", "none"}  # never did it: a count of 0
    assert count(lt=1) == {"none"}
    assert count(eq=0) == {"none"}
    assert count(gt=5, lt=11) == {"some"}  # comparisons combine
    assert count(gte=0) == {"power", "some", "none"}


def test_window_boundary_is_inclusive(store: Store, app_id: str) -> None:
    """`within N days` means at or after as_of − N×24 h: an event exactly on the
    boundary is in, one millisecond earlier is out."""
    edge = NOW - 7 * DAY
    store.write(
        [
            ev(app_id, "page_viewed", edge, user="on_edge"),
            ev(app_id, "page_viewed", edge - 1, user="just_out"),
            ev(app_id, "signup_completed", edge, user="on_edge"),
            ev(app_id, "signup_completed", edge - 1, user="just_out"),
            ev(app_id, "signup_completed", NOW, user="just_out"),  # first time is old
        ]
    )
    for rule in (
        {"last_done_within": {"event": "page_viewed", "days": 7}},
        {"has_done": {"event": "page_viewed", "within_days": 7}},
        {"count": {"event": "page_viewed", "gte": 1, "within_days": 7}},
        {"first_done_within": {"event": "signup_completed", "days": 7}},
        {
            "last_done_within": {
                "event": "page_viewed",
                "days": 7,
                "where": {"x": {"exists": False}},
            }
        },
        {"first_done_within": {"event": "signup_completed", "days": 7, "where": {}}},
    ):
        assert people(segment(store, app_id, [rule])) == {"on_edge"}, rule
    assert people(
        segment(store, app_id, [{"has_not_done": {"event": "page_viewed", "within_days": 7}}])
    ) == {"just_out"}
    # Fractions of a day are allowed.
    assert (
        people(
            segment(store, app_id, [{"last_done_within": {"event": "page_viewed", "days": 0.5}}])
        )
        == set()
    )


def test_identical_timestamps_are_separate_events(store: Store, app_id: str) -> None:
    store.write([ev(app_id, "export_completed", NOW, user="u", props={"i": i}) for i in range(3)])
    assert people(segment(store, app_id, [{"count": {"event": "export_completed", "eq": 3}}])) == {
        "u"
    }
    rule = {"count": {"event": "export_completed", "eq": 3, "within_days": 1}}
    assert people(segment(store, app_id, [rule])) == {"u"}


def test_property_filters_are_typed(store: Store, app_id: str) -> None:
    store.write(
        [
            ev(app_id, "page_viewed", NOW, user="string", props={"v": "1", "plan": "pro"}),
            ev(app_id, "page_viewed", NOW, user="number", props={"v": 1, "plan": "team"}),
            ev(app_id, "page_viewed", NOW, user="true", props={"v": True}),
            ev(app_id, "page_viewed", NOW, user="null", props={"v": None, "plan": "free"}),
            ev(app_id, "page_viewed", NOW, user="float", props={"v": 2.5}),
        ]
    )

    def where(test: dict[str, Any]) -> set[str]:
        rule = {"has_done": {"event": "page_viewed", "where": test}}
        return people(segment(store, app_id, [rule]))

    assert where({"v": "1"}) == {"string"}
    assert where({"v": 1}) == {"number"}
    assert where({"v": 1.0}) == {"number"}
    assert where({"v": True}) == {"true"}
    assert where({"v": None}) == {"null"}
    assert where({"v": {"neq": 1}}) == {"string", "true", "null", "float"}
    assert where({"plan": {"in": ["pro", "team"]}}) == {"string", "number"}
    assert where({"plan": {"not_in": ["pro", "team"]}}) == {"true", "null", "float"}
    assert where({"v": {"gt": 1}}) == {"float"}
    assert where({"v": {"gte": 1, "lt": 3}}) == {"number", "float"}
    assert where({"v": {"lte": "1"}}) == {"string"}  # strings compare with strings only
    assert where({"plan": {"exists": False}}) == {"true", "float"}
    assert where({"v": {"exists": True}, "plan": "free"}) == {"null"}


def test_traits(store: Store, app_id: str) -> None:
    store.write(
        [
            ev(app_id, "identify", NOW, user="pro", traits={"plan": "pro", "seats": 10}),
            ev(app_id, "identify", NOW, user="free", traits={"plan": "free", "seats": 1}),
            ev(app_id, "identify", NOW, user="bare", traits={}),
            ev(app_id, "page_viewed", NOW, anon="visitor"),
        ]
    )
    # Traits merge: a later identify updates one trait and keeps the others.
    store.write([ev(app_id, "identify", NOW + 1, user="free", traits={"seats": 2})])

    def trait(**test: Any) -> set[str]:
        return people(segment(store, app_id, [{"trait": test}]))

    assert trait(key="plan", eq="pro") == {"pro"}
    # Negative tests hold for people without the trait, anonymous visitors included.
    assert trait(key="plan", neq="pro") == {"free", "bare", "anon:visitor"}
    assert trait(key="plan", exists=False) == {"bare", "anon:visitor"}
    assert trait(key="plan", exists=True) == {"pro", "free"}
    assert trait(key="seats", gt=1) == {"pro", "free"}
    assert trait(key="seats", eq=2) == {"free"}
    assert trait(key="plan", **{"in": ["pro", "free"]}) == {"pro", "free"}
    assert trait(key="plan", not_in=["pro"]) == {"free", "bare", "anon:visitor"}


def test_groups_nest_and_not_negates(store: Store, app_id: str) -> None:
    store.write(
        [
            ev(app_id, "a", NOW, user="ab"),
            ev(app_id, "b", NOW, user="ab"),
            ev(app_id, "a", NOW, user="a"),
            ev(app_id, "c", NOW, user="c"),
        ]
    )
    a, b, c = ({"has_done": {"event": x}} for x in "abc")
    assert people(segment(store, app_id, [a, b])) == {"ab"}
    assert people(segment(store, app_id, [a, b], match="any")) == {"ab", "a"}
    nested = [{"match": "any", "conditions": [b, c]}, {"not": a}]
    assert people(segment(store, app_id, nested)) == {"c"}
    assert people(segment(store, app_id, [{"match": "any", "conditions": []}])) == set()
    assert people(segment(store, app_id, [])) == {"ab", "a", "c"}


def test_bots_are_left_out_unless_asked(store: Store, app_id: str) -> None:
    store.write(
        [
            ev(app_id, "page_viewed", NOW, anon="crawler", bot=True),
            ev(app_id, "page_viewed", NOW, user="human"),
            ev(app_id, "export_completed", NOW, user="human", bot=True),  # a headless run
        ]
    )
    assert people(segment(store, app_id, [])) == {"human"}
    assert people(segment(store, app_id, [{"has_done": {"event": "export_completed"}}])) == set()
    assert people(segment(store, app_id, [{"has_not_done": {"event": "export_completed"}}])) == {
        "human"
    }
    with_bots = segment(store, app_id, [], include_bots=True)
    assert people(with_bots) == {"human", "anon:crawler"}
    rule = {"count": {"event": "export_completed", "eq": 1}}
    assert people(segment(store, app_id, [rule], include_bots=True)) == {"human"}
    first = {"first_done_within": {"event": "page_viewed", "days": 1}}
    assert people(segment(store, app_id, [first], include_bots=True)) == {"human", "anon:crawler"}


def test_deleted_user_is_gone_with_their_anonymous_past(store: Store, app_id: str) -> None:
    store.write(
        [
            ev(app_id, "page_viewed", NOW - DAY, anon="a1"),
            ev(app_id, "signup_completed", NOW, user="gone", anon="a1"),
            ev(app_id, "signup_completed", NOW, user="stays"),
        ]
    )
    assert store.delete_user(app_id, "gone") == 2
    rule = {"has_done": {"event": "signup_completed"}}
    assert people(segment(store, app_id, [rule])) == {"stays"}
    assert people(segment(store, app_id, [{"has_done": {"event": "page_viewed"}}])) == set()
    assert people(segment(store, app_id, [])) == {"stays"}
    assert store.user_profile(app_id, "gone") is None


def test_purge_keeps_counts_true(store: Store, app_id: str) -> None:
    store.write([ev(app_id, "page_viewed", NOW - d * DAY, user="u") for d in range(5)])
    store.write([ev(app_id, "page_viewed", NOW - 10 * DAY, user="old")])
    store.write([ev(app_id, "page_viewed", NOW - 10 * DAY, user="unnamed")])
    store.write([ev(app_id, "identify", NOW - 10 * DAY, user="old", traits={"plan": "pro"})])
    store.purge(app_id, NOW - 2 * DAY)
    assert people(segment(store, app_id, [{"count": {"event": "page_viewed", "eq": 3}}])) == {"u"}
    first = {"first_done_within": {"event": "page_viewed", "days": 2}}
    assert people(segment(store, app_id, [first])) == {"u"}
    # Whoever the purge left with neither events nor identify calls is gone, an
    # identified user too (retention takes their users row and traits).
    assert people(segment(store, app_id, [])) == {"u"}


def test_pages_follow_the_cursor_with_a_steady_count(store: Store, app_id: str) -> None:
    store.write([ev(app_id, "a", NOW, user=f"u{i}") for i in range(5)])
    from collector.query.segments import next_cursor

    body: dict[str, Any] = {"conditions": [HAS], "limit": 2}
    seen: list[str] = []
    while True:
        query = parse_segment_query(body, NOW)
        page = store.segment(app_id, query)
        assert page.count == 5
        seen += [u["id"] for u in page.users]
        cursor = next_cursor(query, page.last)
        if cursor is None:
            break
        body["cursor"] = cursor
    assert seen == [f"u{i}" for i in range(5)]


def test_the_cursor_pins_now(store: Store, app_id: str) -> None:
    from collector.query.segments import next_cursor

    body: dict[str, Any] = {"conditions": [HAS], "limit": 1}
    first = parse_segment_query(body, NOW)
    later = parse_segment_query({**body, "cursor": next_cursor(first, "u0")}, NOW + DAY)
    assert later.as_of == NOW
    assert later.after == "u0"


def test_apps_are_isolated(store: Store, app_id: str) -> None:
    other = store.create_app("Other", ["http://localhost"], {}).app_id
    store.write([ev(app_id, "a", NOW, user="mine"), ev(other, "a", NOW, user="theirs")])
    assert people(segment(store, app_id, [HAS])) == {"mine"}
    assert people(segment(store, other, [{"not": HAS}])) == set()
