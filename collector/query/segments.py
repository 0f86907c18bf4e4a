"""The rules language of behavioural segments (`POST /v1/segments/query`).

A JSON rules tree is parsed into typed conditions; every problem is reported at once,
each with its field path (`conditions[2].count.gt`), in the one error shape. This module
knows no SQL: the store compiles the tree (store/queries.py). The property filters and
time arguments defined here are shared with funnels and the other query endpoints.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Mapping
from typing import Any

import orjson
from itsdangerous import BadData, URLSafeSerializer

from collector.errors import FieldError, InvalidRequest, field_error
from collector.query.types import (
    COMPARATORS,
    DAY_MS,
    EVENT_KINDS,
    FILTER_OPS,
    Condition,
    EventCondition,
    Group,
    Not,
    PropertyTest,
    SegmentQuery,
    TraitCondition,
    is_number,
)
from collector.timeutil import parse_timestamp

MAX_TIME_MS = 253402300799999  # 9999-12-31, the last instant timestamps may name

MAX_DAYS = 36_500
MAX_DEPTH = 8
MAX_CONDITIONS = 200
MAX_IN_VALUES = 1_000
# Bounds on what one query compiles to: SQLite allows 32,766 parameters and expressions
# 1,000 deep, and a query past them must be a 400, not a 500.
MAX_TESTS = 200  # property and trait tests in one query
MAX_TEST_VALUES = 5_000  # values in them, `in` lists included
MAX_INT = 2**63 - 1  # SQLite integers are 64-bit
MAX_KEY_LENGTH = 255
DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000

# Cursors -------------------------------------------------------------------------------


# Cursors are signed (itsdangerous), so a client can neither craft a position nor
# smuggle one query's cursor into another unnoticed. The app sets the database's own
# secret at start-up (every worker shares it); until then a random one serves (tests).
_CURSOR_SALT = "telltale.cursor"
_signer = URLSafeSerializer(secrets.token_hex(32), salt=_CURSOR_SALT)


def set_cursor_secret(secret: str) -> None:
    global _signer
    _signer = URLSafeSerializer(secret, salt=_CURSOR_SALT)


def encode_cursor(data: Mapping[str, Any]) -> str:
    """An opaque, signed page token."""
    token: str = _signer.dumps(dict(data))
    return token


def decode_cursor(token: Any, fingerprint: str, errors: list[FieldError]) -> dict[str, Any]:
    if not isinstance(token, str) or not token or len(token) > 2_000:
        errors.append(field_error("cursor", "must be the `next` value of a previous answer"))
        return {}
    try:
        data = _signer.loads(token)
    except BadData:
        data = None
    if not isinstance(data, dict):
        errors.append(field_error("cursor", "is not a valid cursor"))
        return {}
    if data.get("q") != fingerprint:
        errors.append(field_error("cursor", "belongs to a different query"))
        return {}
    return data


def _time_ok(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TIME_MS


def fingerprint(*parts: Any) -> str:
    raw = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw).hexdigest()[:16]


# Shared argument parsers ------------------------------------------------------------


def parse_time(value: Any, path: str, errors: list[FieldError]) -> int | None:
    """An optional instant: ISO 8601 or epoch milliseconds."""
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        errors.append(field_error(path, str(exc)))
        return None


def parse_days(value: Any, path: str, errors: list[FieldError]) -> int | None:
    """A positive number of days (fractions allowed) → milliseconds."""
    if not is_number(value) or not math.isfinite(value) or not 0 < value <= MAX_DAYS:
        errors.append(
            field_error(path, f"must be a number of days, more than 0, at most {MAX_DAYS}")
        )
        return None
    return int(value * DAY_MS)


def parse_bool(value: Any, path: str, errors: list[FieldError]) -> bool:
    if not isinstance(value, bool):
        errors.append(field_error(path, "must be true or false"))
        return False
    return value


def parse_limit(value: Any, path: str, errors: list[FieldError]) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_LIMIT:
        errors.append(field_error(path, f"must be an integer from 1 to {MAX_LIMIT}"))
        return DEFAULT_LIMIT
    return value


def parse_event_name(value: Any, path: str, errors: list[FieldError]) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        errors.append(field_error(path, "must be an event name (1-255 characters)"))
        return ""
    if "\x00" in value:  # PostgreSQL refuses a NUL in text, and no stored name holds one
        errors.append(field_error(path, "must not contain NUL characters"))
        return ""
    return value


def _number_ok(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return -MAX_INT - 1 <= value <= MAX_INT
    return isinstance(value, float) and math.isfinite(value)


def _text_ok(value: Any) -> bool:
    # No NUL: PostgreSQL refuses one in text, and no stored value holds one.
    return isinstance(value, str) and "\x00" not in value


def _scalar_ok(value: Any) -> bool:
    return value is None or isinstance(value, bool) or _text_ok(value) or _number_ok(value)


def _scalar_problem(value: Any) -> str:
    """What to say of a value `_scalar_ok` refuses."""
    if isinstance(value, int) and not isinstance(value, bool):
        # JSON's integers from 2**63 to 2**64 - 1 arrive as integers (larger ones as
        # floats, which compare as numbers): none of them fits a stored 64-bit integer.
        return "is an integer outside 64 bits (-2**63 to 2**63 - 1)"
    return "must be a string, number, boolean or null"


def parse_key(key: Any, path: str, errors: list[FieldError]) -> bool:
    # SQLite JSON paths compare labels with the key as escaped in the stored JSON, and
    # cannot quote `"` at all: keys that JSON escapes (", \, control characters) are
    # refused rather than silently matching nothing. Nobody names a property so.
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= MAX_KEY_LENGTH
        or any(ch in '"\\' or ch < " " for ch in key)
    ):
        errors.append(
            field_error(path, 'must be a property name (1-255 characters, no ", \\ or controls)')
        )
        return False
    return True


def check_budget(tests: list[PropertyTest], path: str, errors: list[FieldError]) -> None:
    values = sum(len(t.value) if t.op in ("in", "not_in") else 1 for t in tests)
    if len(tests) > MAX_TESTS or values > MAX_TEST_VALUES:
        errors.append(
            field_error(
                path,
                f"a query holds at most {MAX_TESTS} property tests "
                f"and {MAX_TEST_VALUES} values in them",
            )
        )


def parse_tests(
    key: str, ops: Mapping[str, Any], path: str, errors: list[FieldError]
) -> list[PropertyTest]:
    """Operator tests on one key, e.g. {"in": ["pro", "team"]} or {"gte": 3, "lt": 10}."""
    tests: list[PropertyTest] = []
    if not ops:
        errors.append(field_error(path, f"needs an operator: {', '.join(FILTER_OPS)}"))
    for op, value in ops.items():
        here = f"{path}.{op}"
        if op in ("eq", "neq"):
            if not _scalar_ok(value):
                errors.append(field_error(here, _scalar_problem(value)))
                continue
        elif op in ("in", "not_in"):
            if not isinstance(value, list) or len(value) > MAX_IN_VALUES:
                errors.append(
                    field_error(here, f"must be a list of at most {MAX_IN_VALUES} values")
                )
                continue
            bad = [i for i, v in enumerate(value) if not _scalar_ok(v)]
            for i in bad:
                errors.append(field_error(f"{here}[{i}]", _scalar_problem(value[i])))
            if bad:
                continue
            value = tuple(value)
        elif op in ("gt", "gte", "lt", "lte"):
            if not (_text_ok(value) or _number_ok(value)):
                problem = _scalar_problem(value)
                if not problem.startswith("is an integer"):
                    problem = "must be a number or a string"
                errors.append(field_error(here, problem))
                continue
        elif op == "exists":
            if not isinstance(value, bool):
                errors.append(field_error(here, "must be true or false"))
                continue
        else:
            errors.append(field_error(here, f"is not an operator (use {', '.join(FILTER_OPS)})"))
            continue
        tests.append(PropertyTest(key, op, value))
    return tests


def parse_where(value: Any, path: str, errors: list[FieldError]) -> tuple[PropertyTest, ...]:
    """`{"plan": "pro", "amount": {"gte": 10}}`: a plain value is equality, an object
    holds operators; every entry must hold."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        errors.append(field_error(path, "must be an object of property tests"))
        return ()
    tests: list[PropertyTest] = []
    for key, test in value.items():
        here = f"{path}.{key}"
        if not parse_key(key, path, errors):
            continue
        if isinstance(test, dict):
            tests.extend(parse_tests(key, test, here, errors))
        elif isinstance(test, list):
            errors.append(field_error(here, 'must be a value; for several use {"in": [...]}'))
        elif not _scalar_ok(test):
            errors.append(field_error(here, _scalar_problem(test)))
        else:
            tests.append(PropertyTest(key, "eq", test))
    return tuple(tests)


# Rules ------------------------------------------------------------------------------


class _Parser:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.count = 0
        self.tests: list[PropertyTest] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(field_error(path, message))

    def group(self, raw: Mapping[str, Any], path: str, depth: int, extra: set[str]) -> Group:
        prefix = f"{path}." if path else ""
        for key in raw:
            if key not in {"match", "conditions"} | extra:
                self.error(prefix + key, "is not a known field")
        match = raw.get("match", "all")
        if match not in ("all", "any"):
            self.error(prefix + "match", 'must be "all" or "any"')
            match = "all"
        items = raw.get("conditions")
        if not isinstance(items, list):
            self.error(prefix + "conditions", "is required: a list of conditions")
            return Group(match, ())
        if depth > MAX_DEPTH:
            self.error(prefix + "conditions", f"groups nest at most {MAX_DEPTH} deep")
            return Group(match, ())
        conditions = []
        for i, item in enumerate(items):
            cond = self.condition(item, f"{prefix}conditions[{i}]", depth)
            if cond is not None:
                conditions.append(cond)
        return Group(match, tuple(conditions))

    def condition(self, raw: Any, path: str, depth: int) -> Condition | None:
        self.count += 1
        if self.count == MAX_CONDITIONS + 1:
            self.error(path, f"a query holds at most {MAX_CONDITIONS} conditions")
        if self.count > MAX_CONDITIONS:
            return None
        if not isinstance(raw, dict):
            self.error(path, "must be an object")
            return None
        if "conditions" in raw or "match" in raw:
            return self.group(raw, path, depth + 1, set())
        kinds = [k for k in raw if k in (*EVENT_KINDS, "trait", "not")]
        if len(kinds) != 1 or len(raw) != 1:
            self.error(
                path,
                "must hold exactly one of "
                + ", ".join((*EVENT_KINDS, "trait", "not"))
                + ", or be a group {match, conditions}",
            )
            return None
        kind = kinds[0]
        body = raw[kind]
        here = f"{path}.{kind}"
        if kind == "not":
            inner = self.condition(body, here, depth + 1)
            return Not(inner) if inner is not None else None
        if kind == "trait":
            return self.trait(body, here)
        return self.event(kind, body, here)

    def trait(self, body: Any, path: str) -> TraitCondition | None:
        if not isinstance(body, dict):
            self.error(path, 'must be an object, e.g. {"key": "plan", "eq": "pro"}')
            return None
        key = body.get("key")
        if not parse_key(key, f"{path}.key", self.errors):
            return None
        assert isinstance(key, str)
        ops = {k: v for k, v in body.items() if k != "key"}
        tests = parse_tests(key, ops, path, self.errors)
        self.tests += tests
        return TraitCondition(tuple(tests)) if tests else None

    def event(self, kind: str, body: Any, path: str) -> EventCondition | None:
        if not isinstance(body, dict):
            self.error(path, 'must be an object, e.g. {"event": "signup_completed"}')
            return None
        allowed = {"event", "where"}
        allowed |= {"days", "within_days"}
        if kind == "count":
            allowed |= set(COMPARATORS)
        for key in body:
            if key not in allowed:
                self.error(f"{path}.{key}", "is not a known field")
        event = parse_event_name(body.get("event"), f"{path}.event", self.errors)
        where = parse_where(body.get("where"), f"{path}.where", self.errors)
        self.tests += where
        within: int | None = None
        if "days" in body and "within_days" in body:
            self.error(f"{path}.days", "give days or within_days, not both")
        window_key = "days" if "days" in body else "within_days"
        if window_key in body:
            within = parse_days(body[window_key], f"{path}.{window_key}", self.errors)
        elif kind in ("first_done_within", "last_done_within"):
            self.error(f"{path}.days", "is required: a number of days")
        compare: list[tuple[str, int]] = []
        if kind == "count":
            for op in COMPARATORS:
                if op not in body:
                    continue
                n = body[op]
                if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_INT:
                    self.error(f"{path}.{op}", "must be a whole number, 0 or more")
                else:
                    compare.append((op, n))
            if not any(op in body for op in COMPARATORS):
                self.error(path, f"needs a comparison: one of {', '.join(COMPARATORS)}")
        return EventCondition(kind, event, where, within, tuple(compare))  # type: ignore[arg-type]


_ROOT_EXTRA = {"include_bots", "limit", "cursor", "as_of"}


def parse_segment_query(body: Any, now: int) -> SegmentQuery:
    """The validated query, or InvalidRequest naming every bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            "The query must be a JSON object",
            [field_error("body", 'must be an object like {"match": "all", "conditions": []}')],
        )
    parser = _Parser()
    rules = parser.group(body, "", 0, _ROOT_EXTRA)
    errors = parser.errors
    check_budget(parser.tests, "conditions", errors)
    include_bots = parse_bool(body.get("include_bots", False), "include_bots", errors)
    limit = parse_limit(body.get("limit"), "limit", errors)
    as_of = parse_time(body.get("as_of"), "as_of", errors)
    cursor = body.get("cursor")
    if errors:
        if cursor is not None and not isinstance(cursor, str):
            errors.append(field_error("cursor", "must be the `next` value of a previous answer"))
        raise InvalidRequest("Invalid segment query", errors)
    # Only now: the rules are known to be plain JSON of sane sizes.
    fp = fingerprint(body.get("match", "all"), body.get("conditions"), include_bots)
    after: str | None = None
    if cursor is not None:
        position = decode_cursor(cursor, fp, errors)
        last, pinned = position.get("after"), position.get("as_of")
        if position and isinstance(last, str) and _time_ok(pinned):
            after = last
            as_of = pinned  # every page of one query counts back from the same moment
        elif position:
            errors.append(field_error("cursor", "is not a valid cursor"))
        if errors:
            raise InvalidRequest("Invalid segment query", errors)
    return SegmentQuery(
        rules=rules,
        include_bots=include_bots,
        as_of=now if as_of is None else as_of,
        limit=limit,
        after=after,
        fingerprint=fp,
    )


def next_cursor(query: SegmentQuery, last_person: str | None) -> str | None:
    if last_person is None:
        return None
    return encode_cursor({"after": last_person, "as_of": query.as_of, "q": query.fingerprint})
