"""Which arm a user is in: sticky, in the weights' shares, and a weight change moves only the users it must
(property tests over many user ids)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from keel.rollout.assign import choose_arm, rendezvous

USERS = [f"user-{i}" for i in range(4000)]
SALT = "keel-rollout"


def _assign(weights: dict[str, float], **kw: object) -> dict[str, str]:
    return {u: choose_arm(u, weights=weights, stable="a", salt=SALT, **kw) for u in USERS}  # type: ignore[arg-type]


def _tolerance(n: int, p: float) -> float:
    """Five standard deviations of a binomial share (a false alarm about once in 3.5 million)."""
    return 5 * math.sqrt(max(p * (1 - p), 1e-9) / n) + 1 / n


def test_95_5_to_90_10_moves_only_users_into_b_and_about_5_percent_of_them() -> None:
    before = _assign({"a": 95, "b": 5})
    after = _assign({"a": 90, "b": 10})
    moved = [u for u in USERS if before[u] != after[u]]
    assert all(before[u] == "a" and after[u] == "b" for u in moved)  # nobody left b, nobody moved elsewhere
    share = len(moved) / len(USERS)
    assert abs(share - 0.05) <= _tolerance(len(USERS), 0.05), share
    # Back to 95/5: exactly the same users as before (a user's arm depends on the weights only).
    assert _assign({"a": 95, "b": 5}) == before


weights = st.floats(min_value=0.5, max_value=100, allow_nan=False, allow_infinity=False)


@settings(max_examples=25, deadline=None)
@given(a=weights, b=weights, c=weights, b2=weights)
def test_changing_one_arms_weight_moves_users_only_to_or_from_that_arm(
    a: float, b: float, c: float, b2: float
) -> None:
    before = _assign({"a": a, "b": b, "c": c})
    after = _assign({"a": a, "b": b2, "c": c})
    for u in USERS:
        if before[u] != after[u]:
            # Raising b only pulls users into b; lowering it only pushes b's users out; a and c never trade.
            assert (after[u] == "b") if b2 > b else (before[u] == "b"), (u, before[u], after[u])
    # The share that moved is the change in b's share, within sampling error.
    expected = abs(b2 / (a + b2 + c) - b / (a + b + c))
    moved = sum(before[u] != after[u] for u in USERS) / len(USERS)
    assert abs(moved - expected) <= _tolerance(len(USERS), max(expected, 0.01))


@settings(max_examples=25, deadline=None)
@given(a=weights, b=weights, c=weights)
def test_shares_follow_the_weights(a: float, b: float, c: float) -> None:
    got = _assign({"a": a, "b": b, "c": c})
    total = a + b + c
    for arm, w in (("a", a), ("b", b), ("c", c)):
        share = sum(1 for v in got.values() if v == arm) / len(USERS)
        assert abs(share - w / total) <= _tolerance(len(USERS), w / total), (arm, share, w / total)


def test_sticky_across_calls_and_processes_alike() -> None:
    # The same inputs, the same arm: no state, no randomness (a fixed hash, not Python's salted hash()).
    assert [rendezvous(u, {"a": 90, "b": 10}, SALT) for u in USERS[:50]] == [
        rendezvous(u, {"b": 10, "a": 90}, SALT) for u in USERS[:50]
    ]
    assert rendezvous("user-1", {"a": 90, "b": 10}, SALT) == rendezvous("user-1", {"a": 90, "b": 10}, SALT)


def test_a_stopped_arm_sends_its_users_to_the_stable_arm_and_nobody_else_moves() -> None:
    w = {"a": 80, "b": 10, "c": 10}
    before = _assign(w)
    after = _assign(w, stopped={"b"})
    for u in USERS:
        assert after[u] == ("a" if before[u] == "b" else before[u])


def test_the_allow_list_wins_over_weights_but_not_over_a_stop() -> None:
    w = {"a": 100, "b": 0}
    assert choose_arm("canary", weights=w, stable="a", salt=SALT, allow={"canary": "b"}) == "b"
    assert choose_arm("canary", weights=w, stable="a", salt=SALT, allow={"canary": "b"}, stopped={"b"}) == "a"
    assert choose_arm("someone", weights=w, stable="a", salt=SALT, allow={"canary": "b"}) == "a"


def test_no_weight_anywhere_is_the_stable_arm() -> None:
    assert choose_arm("u", weights={"a": 0, "b": 0}, stable="a", salt=SALT) == "a"


def test_a_new_salt_reshuffles() -> None:
    w = {"a": 50, "b": 50}
    first = [rendezvous(u, w, "one") for u in USERS[:400]]
    second = [rendezvous(u, w, "two") for u in USERS[:400]]
    assert first != second
