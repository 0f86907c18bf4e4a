"""Property-based tests: random small worlds of users, anonymous visitors, identify calls,
bots and deletions, written through the real write path, then random rules trees and
funnels compared with a plain-Python reference that knows nothing of SQL.

The reference re-derives everything from the list of writes: identity links (first user
an anonymous id is seen with keeps it), traits, deletions, scope, every condition and
the funnel (by brute force over every sequence of events)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.query.funnels import parse_funnel_query, run_funnel
from collector.query.segments import next_cursor, parse_segment_query
from collector.store import Store, open_store
from tests.conftest import BACKENDS
from tests.test_segments import DAY, NOW, ev

SETTINGS = settings(
    max_examples=75,
    derandomize=True,  # the same examples on every run and machine
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

NAMES = ("a", "b", "c")
USERS = ("u0", "u1", "u2", "u3")
ANONS = ("x0", "x1", "x2", "x3")
# Few distinct times, so ties and window edges (7 days before NOW, exactly) are common.
TIMES = (
    NOW - 10 * DAY,
    NOW - 7 * DAY - 1,
    NOW - 7 * DAY,
    NOW - 7 * DAY + 1,
    NOW - 3 * DAY,
    NOW - DAY,
    NOW,
    NOW + 1000,
)
PLANS = ("free", "pro", 1, 2, True, None)
MISSING = object()


# The world ---------------------------------------------------------------------------------


@dataclass
class Write:
    name: str  # "identify" for identify calls
    ts: int
    user: str | None
    anon: str | None
    props: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] | None = None
    bot: bool = False


@st.composite
def writes(draw: st.DrawFn) -> Write:
    user = draw(st.sampled_from((None, *USERS)))
    anon = draw(st.sampled_from((None, *ANONS))) if user else draw(st.sampled_from(ANONS))
    ts = draw(st.sampled_from(TIMES))
    if user is not None and draw(st.integers(0, 5)) == 0:
        traits = {
            "plan": draw(st.sampled_from(("free", "pro", "team"))),
            "seats": draw(st.integers(0, 3)),
        }
        return Write("identify", ts, user, anon, traits=traits)
    plan = draw(st.sampled_from((*PLANS, MISSING)))
    props = {} if plan is MISSING else {"plan": plan}
    return Write(draw(st.sampled_from(NAMES)), ts, user, anon, props, bot=draw(st.booleans()))


@dataclass
class World:
    batches: list[list[Write]]
    deleted: str | None


@st.composite
def worlds(draw: st.DrawFn) -> World:
    items = draw(st.lists(writes(), min_size=10, max_size=30))
    cuts = sorted(draw(st.lists(st.integers(0, len(items)), max_size=2)))
    bounds = [0, *cuts, len(items)]
    batches = [items[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    deleted = draw(st.sampled_from((None, None, *USERS)))
    return World(batches, deleted)


@dataclass
class Row:
    seq: int  # insertion order among stored events
    name: str
    ts: int
    person: str
    props: dict[str, Any]
    bot: bool


@dataclass
class Model:
    rows: list[Row]
    traits: dict[str, dict[str, Any]]  # users, by id


def model(world: World) -> Model:
    """What the store should hold, derived independently of it."""
    links: dict[str, str] = {}
    traits: dict[str, dict[str, Any]] = {}
    tracked: list[Write] = []
    for w in itertools.chain.from_iterable(world.batches):
        if w.user is not None:
            traits.setdefault(w.user, {}).update(w.traits or {})
            if w.anon is not None:
                links.setdefault(w.anon, w.user)
        if w.name != "identify":
            tracked.append(w)
    if world.deleted is not None:
        gone = world.deleted

        def person_of(w: Write) -> str:
            return w.user or links.get(w.anon or "") or f"anon:{w.anon}"

        kept = [
            (i, w)
            for i, w in enumerate(tracked)
            # Another user's events on a device this user once used stay theirs.
            if w.user != gone and person_of(w) != gone
        ]
        links = {a: u for a, u in links.items() if u != gone}
        traits.pop(gone, None)
    else:
        kept = list(enumerate(tracked))
    rows = [
        Row(i, w.name, w.ts, w.user or links.get(w.anon or "") or f"anon:{w.anon}", w.props, w.bot)
        for i, w in kept
    ]
    return Model(rows, traits)


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """One database per backend for every example: each example is an app of its own in
    it (apps are isolated), so PostgreSQL needs no new database per example."""
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgres" else None
    db = (
        cluster.create_database()
        if cluster is not None
        else str(tmp_path_factory.mktemp("props") / "props.db")
    )
    store = open_store(db)
    store.migrate()
    yield store
    store.close()
    if cluster is not None:
        cluster.drop_database(db)


def build(world: World, store: Store) -> str:
    app_id = store.create_app("Props", ["http://localhost"], {}).app_id
    for batch in world.batches:
        store.write(
            [
                ev(app_id, w.name, w.ts, user=w.user, anon=w.anon, props=w.props,
                   traits=w.traits, bot=w.bot)
                for w in batch
            ]
        )  # fmt: skip
    if world.deleted is not None:
        store.delete_user(app_id, world.deleted)
    return app_id


# The reference ------------------------------------------------------------------------------


def same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, bool) or expected is None:
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, int | float):
        return type(actual) in (int, float) and actual == expected
    return type(actual) is str and actual == expected


def holds(props: dict[str, Any], key: str, op: str, value: Any) -> bool:
    if op == "exists":
        return (key in props) == value
    if op in ("neq", "not_in"):
        return not holds(props, key, "eq" if op == "neq" else "in", value)
    if key not in props:
        return False
    actual = props[key]
    if op == "eq":
        return same(actual, value)
    if op == "in":
        return any(same(actual, v) for v in value)
    numbers = type(actual) in (int, float) and type(value) in (int, float)
    strings = type(actual) is str and type(value) is str
    if not (numbers or strings):
        return False
    return {"gt": actual > value, "gte": actual >= value, "lt": actual < value,
            "lte": actual <= value}[op]  # fmt: skip


def where_holds(props: dict[str, Any], where: dict[str, Any]) -> bool:
    for key, test in where.items():
        ops = test if isinstance(test, dict) else {"eq": test}
        if not all(holds(props, key, op, v) for op, v in ops.items()):
            return False
    return True


COUNT_OPS = {
    "gt": lambda n, b: n > b,
    "gte": lambda n, b: n >= b,
    "lt": lambda n, b: n < b,
    "lte": lambda n, b: n <= b,
    "eq": lambda n, b: n == b,
}


def matches(m: Model, person: str, rule: dict[str, Any], bots: bool) -> bool:
    if "conditions" in rule:
        results = (matches(m, person, c, bots) for c in rule["conditions"])
        return all(results) if rule.get("match", "all") == "all" else any(results)
    if "not" in rule:
        return not matches(m, person, rule["not"], bots)
    if "trait" in rule:
        t = rule["trait"]
        traits = m.traits.get(person, {}) if not person.startswith("anon:") else {}
        return all(holds(traits, t["key"], op, v) for op, v in t.items() if op != "key")
    ((kind, body),) = rule.items()
    days = body.get("days", body.get("within_days"))
    cutoff = NOW - days * DAY if days is not None else None
    times = [
        r.ts
        for r in m.rows
        if r.person == person
        and r.name == body["event"]
        and (bots or not r.bot)
        and where_holds(r.props, body.get("where", {}))
    ]
    if kind == "first_done_within":
        return bool(times) and min(times) >= cutoff  # type: ignore[operator]
    if kind == "last_done_within":
        return bool(times) and max(times) >= cutoff  # type: ignore[operator]
    recent = [t for t in times if cutoff is None or t >= cutoff]
    if kind == "has_done":
        return bool(recent)
    if kind == "has_not_done":
        return not recent
    return all(COUNT_OPS[op](len(recent), body[op]) for op in COUNT_OPS if op in body)


def scope(m: Model, bots: bool) -> set[str]:
    with_events = {r.person for r in m.rows}
    active = {r.person for r in m.rows if bots or not r.bot}
    return active | {u for u in m.traits if u not in with_events}


# Rules --------------------------------------------------------------------------------------

WHERE_TESTS = st.sampled_from(
    [
        {"plan": "pro"},
        {"plan": 1},
        {"plan": True},
        {"plan": None},
        {"plan": {"neq": "pro"}},
        {"plan": {"in": ["free", 2]}},
        {"plan": {"not_in": ["free", True]}},
        {"plan": {"gte": 1}},
        {"plan": {"lt": "q"}},
        {"plan": {"exists": False}},
        {"plan": {"exists": True}, "other": {"exists": False}},
    ]
)


@st.composite
def event_rules(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            ("has_done", "has_not_done", "count", "first_done_within", "last_done_within")
        )
    )
    body: dict[str, Any] = {"event": draw(st.sampled_from(NAMES))}
    if draw(st.booleans()):
        body["where"] = draw(WHERE_TESTS)
    days = draw(st.sampled_from((1, 3, 7)))
    if kind in ("first_done_within", "last_done_within"):
        body["days"] = days
    elif draw(st.booleans()):
        body["within_days"] = days
    if kind == "count":
        ops = draw(st.lists(st.sampled_from(tuple(COUNT_OPS)), min_size=1, max_size=2, unique=True))
        for op in ops:
            body[op] = draw(st.integers(0, 3))
    return {kind: body}


TRAIT_RULES = st.sampled_from(
    [
        {"trait": {"key": "plan", "eq": "pro"}},
        {"trait": {"key": "plan", "neq": "pro"}},
        {"trait": {"key": "plan", "in": ["free", "team"]}},
        {"trait": {"key": "plan", "exists": False}},
        {"trait": {"key": "seats", "gt": 1}},
        {"trait": {"key": "seats", "lte": 1, "gte": 1}},
    ]
)

RULES = st.recursive(
    st.one_of(event_rules(), TRAIT_RULES),
    lambda inner: st.one_of(
        st.builds(
            lambda match, conditions: {"match": match, "conditions": conditions},
            st.sampled_from(("all", "any")),
            st.lists(inner, max_size=3),
        ),
        st.builds(lambda c: {"not": c}, inner),
    ),
    max_leaves=6,
)


def person_key(user: dict[str, Any]) -> str:
    return user["id"] if user["id"] is not None else "anon:" + user["anonymous_id"]


def pages(store: Store, app_id: str, body: dict[str, Any]) -> Iterator[list[str]]:
    body = dict(body)
    while True:
        query = parse_segment_query(body, NOW)
        page = store.segment(app_id, query)
        yield [person_key(u) for u in page.users]
        cursor = next_cursor(query, page.last)
        if cursor is None:
            return
        body["cursor"] = cursor


def check(store: Store, app_id: str, m: Model, root: dict[str, Any], bots: bool) -> None:
    expected = sorted(p for p in scope(m, bots) if matches(m, p, root, bots))
    body = {**root, "include_bots": bots, "limit": 1000}
    page = store.segment(app_id, parse_segment_query(body, NOW))
    assert [person_key(u) for u in page.users] == expected, root
    assert page.count == len(expected)


def catalogue() -> list[dict[str, Any]]:
    """Every condition kind on every event, with and without windows and filters."""
    rules: list[dict[str, Any]] = []
    for e in NAMES:
        pro = {"plan": "pro"}
        some = {"plan": {"in": ["free", 1, True]}}
        rules += [
            {"has_done": {"event": e}},
            {"has_done": {"event": e, "within_days": 7}},
            {"has_done": {"event": e, "where": pro}},
            {"has_done": {"event": e, "within_days": 3, "where": {"plan": {"gte": 1}}}},
            {"has_not_done": {"event": e}},
            {"has_not_done": {"event": e, "within_days": 7, "where": {"plan": {"neq": 1}}}},
            {"count": {"event": e, "gt": 1}},
            {"count": {"event": e, "lt": 2}},
            {"count": {"event": e, "eq": 0}},
            {"count": {"event": e, "gte": 2, "within_days": 7}},
            {"count": {"event": e, "lte": 1, "where": some}},
            {"count": {"event": e, "eq": 1, "within_days": 3, "where": {"plan": None}}},
            {"first_done_within": {"event": e, "days": 7}},
            {"first_done_within": {"event": e, "days": 3, "where": some}},
            {"last_done_within": {"event": e, "days": 7}},
            {"last_done_within": {"event": e, "days": 1, "where": {"plan": {"exists": True}}}},
        ]
    return rules


CATALOGUE = catalogue()


@SETTINGS
@given(world=worlds(), bots=st.booleans())
def test_every_condition_matches_the_reference(world: World, bots: bool, shared: Store) -> None:
    store, app_id = shared, build(world, shared)
    m = model(world)
    for rule in CATALOGUE:
        check(store, app_id, m, {"match": "all", "conditions": [rule]}, bots)


@SETTINGS
@given(world=worlds(), trees=st.lists(RULES, min_size=1, max_size=6), bots=st.booleans())
def test_rules_trees_match_the_reference(
    world: World, trees: list[dict[str, Any]], bots: bool, shared: Store
) -> None:
    store, app_id = shared, build(world, shared)
    m = model(world)
    for tree in trees:
        check(store, app_id, m, {"match": "all", "conditions": [tree]}, bots)
    for match in ("all", "any"):
        check(store, app_id, m, {"match": match, "conditions": trees}, bots)
    # Small pages, followed by cursor, give the same people in the same order.
    body = {"match": "any", "conditions": trees, "include_bots": bots, "limit": 2}
    walked = list(itertools.chain.from_iterable(pages(store, app_id, body)))
    expected = sorted(p for p in scope(m, bots) if matches(m, p, body, bots))
    assert walked == expected
    # Everyone in scope, with their merged traits.
    for user in store.segment(app_id, parse_segment_query({"conditions": []}, NOW)).users:
        if user["id"] is not None:
            assert user["traits"] == m.traits[user["id"]]


# Funnels ------------------------------------------------------------------------------------


def _longest(rows: list[Row], start: Row, fits: Any, n_steps: int, window: int) -> tuple[int, ...]:
    """The step times of the furthest sequence from `start`, earliest times first."""
    best: tuple[int, ...] = (start.ts,)

    def extend(chain: list[Row]) -> None:
        nonlocal best
        times = tuple(r.ts for r in chain)
        if len(times) > len(best) or (len(times) == len(best) and times < best):
            best = times
        k = len(chain)
        if k == n_steps:
            return
        for r in rows:
            if r not in chain and fits(r, k) and chain[-1].ts <= r.ts <= start.ts + window:
                extend([*chain, r])

    extend([start])
    return best


def reference_funnel(
    m: Model, steps: list[Any], window: int, since: int | None, until: int | None, bots: bool
) -> dict[str, tuple[list[int], Any]]:
    """Per person: the step times of the best attempt and its first event's plan. Brute
    force: every start, every sequence of distinct events in time order within the
    window; the furthest wins, then the earliest start, then the earliest times."""
    norm = [s if isinstance(s, dict) else {"event": s} for s in steps]

    def fits(r: Row, k: int) -> bool:
        return r.name == norm[k]["event"] and where_holds(r.props, norm[k].get("where", {}))

    out: dict[str, tuple[list[int], Any]] = {}
    for person in sorted({r.person for r in m.rows}):
        rows = sorted(
            (r for r in m.rows if r.person == person and (bots or not r.bot)),
            key=lambda r: (r.ts, r.seq),
        )
        best: tuple[tuple[int, ...], Row] | None = None
        for start in rows:
            if not fits(start, 0) or (since is not None and start.ts < since):
                continue
            if until is not None and start.ts >= until:
                continue
            times = _longest(rows, start, fits, len(norm), window)
            if best is None or len(times) > len(best[0]):
                best = (times, start)
        if best is not None:
            out[person] = (list(best[0]), best[1].props.get("plan", MISSING))
    return out


def breakdown_name(plan: Any) -> str:
    if plan is MISSING or plan is None:
        return "(none)"
    if isinstance(plan, bool):
        return "true" if plan else "false"
    return str(plan)


def expected_steps(attempts: list[list[int]], steps: list[Any]) -> list[dict[str, Any]]:
    first = len(attempts)
    out = []
    previous = first
    for k, step in enumerate(steps):
        reached = [a for a in attempts if len(a) > k]
        gaps = sorted((a[k] - a[k - 1]) / 1000 for a in reached) if k else []
        median = None
        if gaps:
            mid = len(gaps) // 2
            median = gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2
        entry = {
            "event": step["event"] if isinstance(step, dict) else step,
            "users": len(reached),
            "conversion_from_first": round(len(reached) / first, 4) if first else 0.0,
            "conversion_from_previous": round(len(reached) / previous, 4) if previous else 0.0,
            "median_seconds_from_previous": median,
        }
        if isinstance(step, dict) and step.get("where"):
            entry["where"] = step["where"]
        out.append(entry)
        previous = len(reached)
    return out


STEP = st.one_of(
    st.sampled_from(NAMES),
    st.builds(lambda e, w: {"event": e, "where": w}, st.sampled_from(NAMES), WHERE_TESTS),
)


@st.composite
def funnels(draw: st.DrawFn, step: st.SearchStrategy[Any] = STEP) -> dict[str, Any]:
    body: dict[str, Any] = {
        "steps": draw(st.lists(step, min_size=2, max_size=3)),
        "within_days": draw(st.sampled_from((1, 3, 7))),
        "include_bots": draw(st.booleans()),
    }
    since = draw(st.sampled_from((None, NOW - 7 * DAY)))
    until = draw(st.sampled_from((None, NOW - DAY)))
    if since is not None:
        body["since"] = since
    if until is not None:
        body["until"] = until
    if draw(st.booleans()):
        body["breakdown"] = "plan"
    return body


@SETTINGS
@given(world=worlds(), bodies=st.lists(funnels(), min_size=1, max_size=6))
def test_funnels_match_the_reference(
    world: World, bodies: list[dict[str, Any]], shared: Store
) -> None:
    check_funnels(world, bodies, shared)


@SETTINGS
@given(
    world=worlds(),
    bodies=st.lists(funnels(st.sampled_from(NAMES)), min_size=1, max_size=6),
)
def test_funnels_read_as_columns_match_the_reference(
    world: World, bodies: list[dict[str, Any]], shared: Store
) -> None:
    """Steps without property filters: the store reads them as columns (store/funnels.py)
    and the matching runs over arrays (`compute_funnel_columns`)."""
    check_funnels(world, bodies, shared, columns=True)


def check_funnels(
    world: World, bodies: list[dict[str, Any]], store: Store, columns: bool = False
) -> None:
    app_id = build(world, store)
    m = model(world)
    for body in bodies:
        query = parse_funnel_query(body)
        if columns:
            with store.funnel_events(app_id, query) as found:
                assert found.columns is not None
        result = run_funnel(store, app_id, query)
        steps = body["steps"]
        ref = reference_funnel(
            m,
            steps,
            body["within_days"] * DAY,
            body.get("since"),
            body.get("until"),
            body["include_bots"],
        )
        assert result["steps"] == expected_steps([t for t, _ in ref.values()], steps), body
        if "breakdown" in body:
            groups: dict[str, list[list[int]]] = {}
            for times, plan in ref.values():
                groups.setdefault(breakdown_name(plan), []).append(times)
            assert result["breakdown"] == {
                name: {"steps": expected_steps(group, steps)} for name, group in groups.items()
            }
            order = sorted(groups, key=lambda name: (-len(groups[name]), name))
            assert list(result["breakdown"]) == order
