"""Redaction: every secret pattern goes, look-alikes stay, and the properties hold on random structures."""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import json
import random
import string
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from keel.redaction import CYCLE, MAX_DEPTH, MAX_TEXT, REDACTED, Redactor, redact, redact_text

SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
OPENAI = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7CD0EF"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\n"
    "Z1BjP5CE/Wm/Rr500P9ESr1HWk2KMBAA4IG8aYpEj0Ns\n-----END RSA PRIVATE KEY-----"
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
RANDOM = "Zx8Qm2LpR7vTn4Ks9WcY1bHd6Gf3Jq0aUe5Xi8Oo"

REDACTED_EXAMPLES = [
    (f"key {OPENAI} end", "key [REDACTED] end"),
    ("legacy sk-Xy12ABcdEFgh34IJklMNop56QRstUVwx78YZabCDefGH90", "legacy [REDACTED]"),
    ("claude sk-ant-api03-Zx9Kq2Lm7Np4Rt8Vw1Yb6Cd3Fg0Hj5Mn-_AbCdEfGhIjKl", "claude [REDACTED]"),
    ("aws AKIAIOSFODNN7EXAMPLE,", "aws [REDACTED],"),
    ("gh ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij12 ok", "gh [REDACTED] ok"),
    ("oauth gho_16C7e42F292c6912E7710c838347Ae178B4a ok", "oauth [REDACTED] ok"),
    ("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGH", "pat [REDACTED]"),
    ("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack [REDACTED]"),
    ("google AIzaSyA-1234567890abcdefghijklmnopqrstu", "google [REDACTED]"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc, rk_live_51HzQ2eLkdIwHu7ix", "stripe [REDACTED], [REDACTED]"),
    ("Authorization: Bearer abc.DEF-123_xyz~ok", "Authorization: Bearer [REDACTED]"),
    ("sent Bearer abcDEF123456789xyz to the api", "sent Bearer [REDACTED] to the api"),
    ("header Basic dXNlcjpwYXNzd29yZA==", "header Basic [REDACTED]"),
    ("postgresql://keel:s3cr3t@db.internal:5432/keel", "postgresql://[REDACTED]@db.internal:5432/keel"),
    ("redis://:hunter2@cache:6379/0", "redis://[REDACTED]@cache:6379/0"),
    (
        "hook https://hooks.slack.com/services/T000/B000/XXXXXXXX",
        "hook https://hooks.slack.com/services/[REDACTED]",
    ),
    (f"key:\n{PEM}\nbye", "key:\n[REDACTED]\nbye"),
    (f"jwt {JWT}.", "jwt [REDACTED]."),
    ("password=hunter2!", "password=[REDACTED]"),
    ("token: abc123, next", "token: [REDACTED], next"),
    ('api_key="xyz 123"', 'api_key="[REDACTED]"'),
    ('{"password": "p@ss w0rd", "user": "bob"}', '{"password": "[REDACTED]", "user": "bob"}'),
    ("{'client_secret': 'abc'}", "{'client_secret': '[REDACTED]'}"),
    ('{\\"passwd\\": \\"x y\\"}', '{\\"passwd\\": \\"[REDACTED]\\"}'),
    ("OPENAI_API_KEY=abc123def", "OPENAI_API_KEY=[REDACTED]"),
    ("/cb?refresh_token=abc&page=2", "/cb?refresh_token=[REDACTED]&page=2"),
    ("X-Api-Key: 12345", "X-Api-Key: [REDACTED]"),
    ("Cookie: sid=abc; theme=dark\nnext", "Cookie: [REDACTED]\nnext"),
    ("card 4111 1111 1111 1111 ok", "card [REDACTED] ok"),
    ("mc 5500-0000-0000-0004", "mc [REDACTED]"),
    ("amex 378282246310005.", "amex [REDACTED]."),
    ("mail alice.smith+keel@example.co.uk now", "mail [REDACTED] now"),
    ("call +1 (415) 555-2671", "call [REDACTED]"),
    ("uk +44 20 7946 0958.", "uk [REDACTED]."),
    ("us 415-555-2671 or (415) 555-2671 or 415.555.2671", "us [REDACTED] or [REDACTED] or [REDACTED]"),
    ("berlin 030 1234 5678", "berlin [REDACTED]"),
    ("mobile +4915112345678", "mobile [REDACTED]"),
    (f"random {RANDOM} ok", "random [REDACTED] ok"),
    ("b64 q2E7+f0xLk9/ZpW3rT1uYb8NcV4mHs6JgD5aKe2Ro0w= ok", "b64 [REDACTED] ok"),
    (f"sha {SHA256}", "sha [REDACTED]"),
]

LOOKALIKES = [
    "The author wrote about tokenization, passwords and session handling.",
    "home/alice/notes.md",
    "/home/alice/projects/keel/notes.md",
    r"C:\Users\alice\Documents\report.docx",
    "2024-01-15T10:30:00Z",
    "2024-01-15T10:30:00.123456+00:00",
    "2024-01-15 10:30:00",
    "15.01.2024",
    "1705312200000",
    "year 2024",
    "42",
    "3.14159",
    "took 1234 ms",
    "1,000,000 rows",
    "ORD-2024-000123",
    "order #A1B2C3",
    "order 12345678",
    "invoice INV-000042-2024",
    "4111 1111 1111 1112",
    "4111111111111112",
    "550e8400-e29b-41d4-a716-446655440000",
    "gpt-4o-mini-2024-07-18",
    "claude-3-5-sonnet-20241022",
    "AbstractSingletonProxyFactoryBean",
    "langchain_openai/chat_models/base",
    "Users/Alice/Projects2024/KeelRuntime/src",
    "getUserAccountSettingsByOrganizationId42",
    "internationalization",
    "192.168.100.200",
    "v1.2.3",
    "Basic usage of the bearer instrument.",
    "tokens_used=42, max_tokens: 1024, author: Ada",
    "https://example.com/api/v1/users/12345/orders?page=2",
    "sk-learn-tutorial-for-beginners-and-experts",
    "key: value",
    REDACTED,
    f"{REDACTED} and {REDACTED}",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED_EXAMPLES)
def test_value_patterns_are_redacted(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_survive(text: str) -> None:
    assert redact_text(text) == text


USAGE = {
    "author": "Ada",
    "authors": ["Ada"],
    "tokens_used": 10,
    "input_tokens": 5,
    "output_tokens": 7,
    "total_tokens": 12,
    "max_tokens": 1024,
    "usage_metadata": {"input_token_details": {"cache_read": 2}},
    "token_usage": {"prompt_tokens": 1, "completion_tokens": 2},
    "tokenizer": "cl100k_base",
}
SECRET_KEYS = [
    "password",
    "PASSWORD",
    "db_password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "apiKey",
    "API-KEY",
    "x-api-key",
    "X-Api-Key",
    "access_key",
    "aws_secret_access_key",
    "private_key",
    "Authorization",
    "auth",
    "oauth_state",
    "cookie",
    "Set-Cookie",
    "session",
    "sessionId",
    "credentials",
    "Client Secret",
]


def test_usage_counters_and_ordinary_keys_stay_visible() -> None:
    assert redact(USAGE) == USAGE


@pytest.mark.parametrize("key", SECRET_KEYS)
@pytest.mark.parametrize("value", ["v", 123, 1.5, True, None, ["a", 1], {"nested": {"x": 1}}, ("t",), b"raw"])
def test_secret_keys_redact_any_value(key: str, value: Any) -> None:
    assert redact({"outer": [{key: value}]}) == {"outer": [{key: REDACTED}]}


def test_digest_and_hash_keys_skip_entropy_but_not_patterns() -> None:
    row = {
        "result_digest": SHA256,
        "args_hash": SHA256,
        "hashes": [SHA256],
        "note": SHA256,
        "content_digest": f"leaked {OPENAI}",
    }
    assert redact(row) == {
        "result_digest": SHA256,
        "args_hash": SHA256,
        "hashes": [SHA256],
        "note": REDACTED,
        "content_digest": f"leaked {REDACTED}",
    }


def test_extra_keys_and_flags() -> None:
    assert Redactor(extra_keys=["SSN", "employee-id"]).redact({"user_ssn": 1, "EmployeeId": "e"}) == {
        "user_ssn": REDACTED,
        "EmployeeId": REDACTED,
    }
    assert Redactor(extra_keys=["ssn"]).redact_text("ssn=123-45-6789") == "ssn=[REDACTED]"
    text = f"alice@example.com +1 (415) 555-2671 {RANDOM}"
    assert Redactor(emails=False, phones=False, entropy=False).redact_text(text) == text
    assert Redactor(min_entropy_len=64).redact_text(text) == f"{REDACTED} {REDACTED} {RANDOM}"


class Call(BaseModel):
    name: str
    api_key: str
    args: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Row:
    tool: str
    token: str
    output: str


class Pair(NamedTuple):
    key: str
    value: str


def test_models_dataclasses_and_collections() -> None:
    assert redact(Call(name="search", api_key="k", args={"q": "mail bob@example.com"})) == {
        "name": "search",
        "api_key": REDACTED,
        "args": {"q": f"mail {REDACTED}"},
    }
    assert redact(Row(tool="t", token="x", output=OPENAI)) == {
        "tool": "t",
        "token": REDACTED,
        "output": REDACTED,
    }
    assert redact(Pair("k", OPENAI)) == Pair("k", REDACTED)
    assert redact((OPENAI, 1)) == (REDACTED, 1)
    assert redact({OPENAI, "a"}) == {REDACTED, "a"}
    assert redact(frozenset({"a"})) == frozenset({"a"})
    assert redact({("user", "bob@example.com"): 1}) == {("user", REDACTED): 1}


def test_non_string_scalars_are_unchanged() -> None:
    when = dt.datetime(2024, 1, 15, 10, 30)
    for value in (4111111111111111, 3.5, True, None, b"sk-raw", when):
        assert redact(value) is value


def test_secret_dict_keys_are_redacted_and_collisions_kept() -> None:
    out = redact({"alice@example.com": 1, "bob@example.com": 2, "plain": 3})
    assert out == {REDACTED: 1, f"{REDACTED}#2": 2, "plain": 3}
    assert redact(out) == out


def test_cycles_and_depth_are_bounded() -> None:
    loop: list[Any] = ["a"]
    loop.append(loop)
    assert redact(loop) == ["a", CYCLE]
    node: dict[str, Any] = {"name": "n"}
    node["self"] = node
    assert redact(node) == {"name": "n", "self": CYCLE}
    shared = {"x": 1}
    assert redact([shared, shared]) == [{"x": 1}, {"x": 1}]  # shared, not cyclic
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 10):
        deep = [deep]
    out, depth = redact(deep), 0
    while isinstance(out, list):
        out, depth = out[0], depth + 1
    assert (out, depth) == (REDACTED, MAX_DEPTH + 1)


def test_long_strings_are_truncated_without_partial_secrets() -> None:
    text = "word " * (MAX_TEXT // 5) + OPENAI
    out = redact_text(text)
    assert len(out) <= MAX_TEXT and "TRUNCATED" in out and OPENAI not in out
    assert redact_text(out) == out
    cut = "a " * ((MAX_TEXT - 50) // 2) + OPENAI + " tail" * 100  # the key straddles the cut
    out = redact_text(cut)
    assert len(out) <= MAX_TEXT and OPENAI[:12] not in out


def test_ten_kilobytes_redact_fast() -> None:
    line = (
        f'2024-01-15T10:30:00Z tool=search user=alice@example.com args={{"q": "weather"}} '
        f"path=home/a/b.md tokens_used=42 result_digest={SHA256} "
        f"Authorization: Bearer abcDEF123456789xyz {OPENAI}\n"
    )
    text = (line * (10_000 // len(line) + 1))[:10_000]
    best = min(_timed(lambda: redact_text(text)) for _ in range(5))
    assert best < 0.010, f"{best * 1000:.1f} ms"


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_structlog_processor_redacts_events() -> None:
    log = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[Redactor().structlog_processor, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.BoundLogger,  # every level: not the process's configured filter
    )
    rendered = log.info("login password=hunter2", user="alice@example.com", api_key="k", input_tokens=3)
    out = json.loads(rendered)
    assert out == {
        "event": "login password=[REDACTED]",
        "user": REDACTED,
        "api_key": REDACTED,
        "input_tokens": 3,
    }


def test_input_is_not_mutated() -> None:
    value = {"password": "p", "items": [OPENAI, {"token": "t"}], "t": (OPENAI,)}
    snapshot = copy.deepcopy(value)
    redact(value)
    assert value == snapshot


# ---- property-based: realistic secrets planted in random structures ----

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
ORDINARY = [
    "data",
    "items",
    "result",
    "payload",
    "meta",
    "args",
    "config",
    "user",
    "notes",
    "content",
    "output",
    "rows",
    "message",
    "text",
    "value",
]
WORDS = st.sampled_from(
    [
        "the",
        "agent",
        "called",
        "a",
        "tool",
        "with",
        "result",
        "and",
        "then",
        "said",
        "ok",
        "see",
        "value",
        "at",
        "for",
    ]
)


def _r(rng: random.Random, alphabet: str, lo: int, hi: int | None = None) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi or lo)))


def _luhn_ok(digits: str) -> bool:
    total = sum(int(d) for d in digits[-1::-2])
    return (total + sum(sum(divmod(2 * int(d), 10)) for d in digits[-2::-2])) % 10 == 0


def _card(rng: random.Random) -> tuple[str, list[str]]:
    prefix = rng.choice(["4", "51", "55", "2221", "34", "37", "6011"])
    size = 15 if prefix in ("34", "37") else 16
    body = prefix + _r(rng, string.digits, size - len(prefix) - 1)
    number = next(body + c for c in string.digits if _luhn_ok(body + c))
    sep = rng.choice(["", " ", "-"])
    cuts = (4, 10) if size == 15 else (4, 8, 12)
    parts = [number[a:b] for a, b in zip((0, *cuts), (*cuts, size), strict=True)]
    text = sep.join(parts) if sep else number
    return text, [text]


def _phone(rng: random.Random) -> tuple[str, list[str]]:
    d = lambda n: str(rng.randint(2, 9)) + _r(rng, string.digits, n - 1)  # noqa: E731
    text = rng.choice(
        [
            f"+1 ({d(3)}) {d(3)}-{d(4)}",
            f"+44 20 {d(4)} {d(4)}",
            f"+49{d(11)}",
            f"{d(3)}-{d(3)}-{d(4)}",
            f"({d(3)}) {d(3)}-{d(4)}",
            f"0{d(2)} {d(4)} {d(4)}",
            f"{d(3)}.{d(3)}.{d(4)}",
        ]
    )
    return text, [text]


def _pem(rng: random.Random) -> tuple[str, list[str]]:
    kind = rng.choice(["RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""])
    lines = [base64.b64encode(rng.randbytes(48)).decode() for _ in range(rng.randint(2, 6))]
    body = "\n".join(lines)
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----", lines


def _jwt(rng: random.Random) -> tuple[str, list[str]]:
    enc = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")  # noqa: E731
    payload = enc(json.dumps({"sub": _r(rng, ALNUM, 8, 16), "exp": rng.randint(10**9, 2 * 10**9)}).encode())
    header, sig = enc(b'{"alg":"HS256","typ":"JWT"}'), enc(rng.randbytes(32))
    token = f"{header}.{payload}.{sig}"
    return token, [token, sig]


def _assignment(rng: random.Random) -> tuple[str, list[str]]:
    name = rng.choice(["password", "passwd", "api_key", "API_KEY", "token", "client_secret", "db_password"])
    value = _r(rng, ALNUM + "!#$%*^", 12, 32)
    form = rng.choice(["{}={}", "{}: {}", '"{}": "{}"', "{}='{}'"])
    return form.format(name, value), [value]


def _url(rng: random.Random) -> tuple[str, list[str]]:
    user, pw = _r(rng, string.ascii_lowercase, 3, 10), _r(rng, ALNUM + "!$*", 10, 24)
    host = rng.choice(["db.internal:5432", "redis.example.com", "api.example.org"])
    return f"{rng.choice(['postgresql', 'redis', 'https'])}://{user}:{pw}@{host}/x", [f"{user}:{pw}", pw]


def _entropy(rng: random.Random) -> tuple[str, list[str]]:
    raw = rng.randbytes(rng.randint(36, 48))  # 48-64 base64 chars, 64-96 hex chars
    kind = rng.choice(["b64", "url", "hex"])
    if kind == "hex":  # hex runs under 64 chars are ids (uuid hex, trace ids, git shas), not keys
        token = raw[:32].hex()
    else:
        token = (base64.b64encode if kind == "b64" else base64.urlsafe_b64encode)(raw).decode()
    return token, [token.rstrip("=")]


def _simple(make: Callable[[random.Random], str]) -> Callable[[random.Random], tuple[str, list[str]]]:
    return lambda rng: (lambda s: (s, [s]))(make(rng))


KINDS: list[Callable[[random.Random], tuple[str, list[str]]]] = [
    _simple(lambda r: "sk-" + _r(r, ALNUM, 48)),
    _simple(lambda r: "sk-proj-" + _r(r, URLSAFE, 40, 156)),
    _simple(lambda r: "sk-ant-api03-" + _r(r, URLSAFE, 93) + "AA"),
    _simple(lambda r: "AKIA" + _r(r, string.ascii_uppercase + "234567", 16)),
    _simple(lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + _r(r, ALNUM, 36)),
    _simple(lambda r: "github_pat_" + _r(r, ALNUM, 22) + "_" + _r(r, ALNUM, 59)),
    _simple(lambda r: f"xox{r.choice('abprs')}-{_r(r, string.digits, 10, 13)}-{_r(r, ALNUM, 24)}"),
    _simple(lambda r: "AIza" + _r(r, URLSAFE, 35)),
    _simple(lambda r: r.choice(["sk_live_", "rk_live_", "sk_test_"]) + _r(r, ALNUM, 24, 99)),
    _simple(
        lambda r: (
            _r(r, string.ascii_lowercase + string.digits + "._", 3, 12)
            + "@"
            + _r(r, string.ascii_lowercase, 3, 10)
            + r.choice([".com", ".org", ".co.uk", ".io"])
        )
    ),
    lambda r: (lambda tok: ("Bearer " + tok, [tok]))(_r(r, URLSAFE + ".~", 20, 64)),
    _card,
    _phone,
    _pem,
    _jwt,
    _assignment,
    _url,
    _entropy,
]
# A seeded generator, not Hypothesis-drawn characters, makes each secret: shrinking never yields "AAAA..."
SECRETS = st.tuples(st.sampled_from(KINDS), st.integers(0, 2**32 - 1)).map(
    lambda t: t[0](random.Random(t[1]))
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
FILLER_KEYS = st.sampled_from(ORDINARY) | st.text(max_size=8)
FILLER = st.recursive(
    SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(FILLER_KEYS, c, max_size=3), max_leaves=8
)


@st.composite
def _in_sentence(draw: st.DrawFn, secret: str) -> str:
    if not draw(st.booleans()):
        return secret
    tail = draw(st.sampled_from(["", ".", ",", ";", "!"]))
    return " ".join([*draw(st.lists(WORDS, max_size=6)), secret + tail, *draw(st.lists(WORDS, max_size=6))])


@st.composite
def _nested(draw: st.DrawFn, leaf: Any) -> Any:
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            siblings = draw(st.dictionaries(FILLER_KEYS, FILLER, max_size=3))
            siblings[draw(st.sampled_from(ORDINARY))] = leaf
            leaf = siblings
        else:
            items = draw(st.lists(FILLER, max_size=3))
            items.insert(draw(st.integers(0, len(items))), leaf)
            leaf = items
    return leaf


@st.composite
def planted(draw: st.DrawFn) -> tuple[Any, list[str]]:
    secret, cores = draw(SECRETS)
    return draw(_nested(draw(_in_sentence(secret)))), cores


TEXTS = st.text(max_size=30) | SECRETS.map(lambda s: s[0]) | SECRETS.flatmap(lambda s: _in_sentence(s[0]))
KEYS = st.text(max_size=10) | st.sampled_from([*SECRET_KEYS, *ORDINARY, "result_digest", "input_tokens"])
JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXTS,
    lambda c: (
        st.lists(c, max_size=4) | st.lists(c, max_size=3).map(tuple) | st.dictionaries(KEYS, c, max_size=4)
    ),
    max_leaves=20,
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(planted())
def test_planted_secret_never_survives(case: tuple[Any, list[str]]) -> None:
    structure, cores = case
    dumped = json.dumps(redact(structure))
    for core in cores:
        assert json.dumps(core)[1:-1] not in dumped


@PROPERTY
@given(st.sampled_from(SECRET_KEYS), FILLER | SECRETS.map(lambda s: s[0]), st.data())
def test_values_under_secret_keys_are_removed(key: str, value: Any, data: st.DataObject) -> None:
    path = data.draw(st.lists(st.sampled_from(ORDINARY) | st.integers(0, 2), max_size=5))
    structure: Any = {key: value}
    for step in reversed(path):
        structure = {step: structure} if isinstance(step, str) else [*["pad"] * step, structure]
    out = redact(structure)
    for step in path:
        out = out[step]
    assert out == {key: REDACTED}


@PROPERTY
@given(JSON_LIKE)
def test_redaction_is_idempotent_and_never_mutates(value: Any) -> None:
    snapshot = copy.deepcopy(value)
    once = redact(value)
    assert value == snapshot
    assert redact(once) == once


@PROPERTY
@given(st.lists(TEXTS | WORDS, max_size=8).map(" ".join))
def test_text_redaction_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


# ---- evidence survives: ids, paths and plain words are not secrets (issue 11, item 9) ----

PLAIN_WORDS = st.sampled_from(
    ["failed", "error", "ok", "timeout", "denied", "policy", "tool", "send_email", "thread", "run", "status"]
    + ["succeeded", "terminated", "budget_exceeded", "llm_unavailable", "awaiting_approval", "keel"]
)
NAME_WORD = st.sampled_from(["policy", "tests", "data", "keel", "runs", "site-packages", "Users"])
SEGMENT = st.builds(  # names as people and tools write them: words, a separator, maybe a number
    lambda words, sep, num: sep.join(words) + num,
    st.lists(NAME_WORD | PLAIN_WORDS, min_size=1, max_size=3),
    st.sampled_from(["_", "-", ""]),
    st.sampled_from(["", "0", "2", "_12", "-v3", "2024"]),
)
HEX_ID = st.uuids().map(lambda u: u.hex)
UUID_TEXT = st.uuids().map(str)
PATH_PART = SEGMENT | PLAIN_WORDS | HEX_ID | UUID_TEXT
FILE_PATH = st.builds(
    lambda root, parts, name, ext: root + "/".join([*parts, name]) + ext,
    st.sampled_from(["/", "./", "", ".keel/", "/tmp/pytest-of-root/pytest-0/", "C:/Users/alice/"]),
    st.lists(PATH_PART, min_size=0, max_size=5),
    PATH_PART,
    st.sampled_from([".yaml", ".yml", ".py", ".sqlite", ".json", ""]),
)
EVIDENCE = PLAIN_WORDS | HEX_ID | UUID_TEXT | FILE_PATH


@PROPERTY
@given(st.lists(EVIDENCE, min_size=1, max_size=6).map(" ".join))
def test_ids_paths_and_plain_words_survive(text: str) -> None:
    assert redact_text(text) == text
    assert redact({"status": text, "thread_id": text, "detail": [text]}) == {
        "status": text,
        "thread_id": text,
        "detail": [text],
    }


@PROPERTY
@given(EVIDENCE, SECRETS, st.sampled_from([" ", "/", ": ", "="]))
def test_secrets_inside_evidence_are_still_caught(
    evidence: str, secret: tuple[str, list[str]], sep: str
) -> None:
    text, cores = secret
    for planted_text in (f"{evidence}{sep}{text}", f"{text} {evidence}"):
        out = redact_text(planted_text)
        for core in cores:
            assert core not in out


@pytest.mark.parametrize(
    "text",
    [
        "failed",
        "tool send_email failed",
        "status: failed",
        "auth_status: failed",
        "thread 6f1c2b7e9a0d4c3b8e5f1a2d3c4b5a69 resumed",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        ".keel/runs/0f3c9a1be4d247c6b8e5a91d2c7f4e10/policy.yaml",
        "/home/u/.keel/checkpoints_4f2a9b7c1d3e5f60.sqlite",
        '  File "/work/main/.venv/lib/python3.11/site-packages/langgraph/pregel/_runner.py", line 12',
    ],
)
def test_evidence_examples_survive(text: str) -> None:
    assert redact_text(text) == text


def test_keys_about_a_credential_are_ordinary_keys() -> None:
    row = {
        "auth_status": "failed",
        "token_type": "Bearer",
        "sessionCount": 3,
        "gen_ai.usage.input_tokens": 12,
        "session_id": "s",
        "oauth_state": "o",
    }
    assert redact(row) == {**row, "session_id": REDACTED, "oauth_state": REDACTED}


def test_hex_keys_of_64_chars_and_more_are_still_redacted() -> None:
    key = "7ccb8c0925cb88187c0328cdc8edba2a4ea81111ab65e99ac4d93858462bfa53"
    assert redact_text(f"secret {key}") == f"secret {REDACTED}"
    assert redact_text(f".keel/{key}/x") == f".keel/{REDACTED}/x"


def test_runs_about_distinct_hex_ids_stay_distinct_memories() -> None:
    """Redacted 32-hex ids made two memories one text, and de-duplication (by text) merged them."""
    from keel.memory.run_memory import run_memory_text

    texts = {
        run_memory_text(
            task=f"resume thread {tid} and report",
            tools_used=["read_file"],
            tools_failed=[],
            status="succeeded",
            reason=None,
            answer=f"thread {tid} resumed",
        )
        for tid in ("6f1c2b7e9a0d4c3b8e5f1a2d3c4b5a69", "0f3c9a1be4d247c6b8e5a91d2c7f4e10")
    }
    assert len(texts) == 2 and all("6f1c2b7e" in t or "0f3c9a1b" in t for t in texts)


def test_a_luhn_valid_digit_run_inside_a_hex_id_is_not_a_card() -> None:
    assert redact_text("5c7b2e9ce5f408025468314252d93170") == "5c7b2e9ce5f408025468314252d93170"
    assert redact_text("card 4111111111111111.") == f"card {REDACTED}."  # a card on its own still goes
