"""Redaction for everything keel writes: audit rows, logs, traces, LangSmith payloads, tool outputs, answers.

Hand-written compiled regexes. ``detect-secrets`` 1.5.0 was tried: it scans lines, returns values instead of
spans, lacks several formats below (sk-proj, Anthropic, github_pat_, Google, cards, emails, phones) and took
~50 ms on a 10 KB line; this module takes ~1-3 ms.

* Key names at any depth (case, ``-``, ``_``, spaces and dots ignored; substring match) redact the value.
  Usage counters (``input_tokens``, ``max_tokens``...) are allow-listed; ``author`` is not ``auth``.
* Patterns inside every string and string dict key: provider keys (OpenAI, Anthropic, AWS key id, GitHub,
  Slack, Google, Stripe), bearer/basic credentials (scheme kept), URL credentials (scheme and host kept), PEM
  private keys, JWTs, ``password=...`` / ``"token": "..."`` assignments, Luhn-valid cards, emails, phones.
  A phone has 9-15 digits and a phone shape (``+``, ``(area)``, ``-``/``.`` groups, space groups after a
  trunk ``0``); dates, IPs, years and plain digit runs (ids, epoch millis) stay.
* High entropy: base64/hex runs of >= ``min_entropy_len`` chars with mixed classes, high Shannon entropy and
  frequent case/digit changes inside words (random text every ~2 chars, names and paths every 5+). Random
  runs of 24-31 chars are caught ~98% of the time, 40+ almost always. Identifiers stay: dashed UUIDs and
  hex runs shorter than 64 (``uuid4().hex`` thread ids, trace ids, git shas), alone or as a segment of a
  name or path (``.keel/runs/<hex>/policy.yaml``): the rest of the run is judged without them. A hex run of
  64+ (``secrets.token_hex()``, a SHA-256) is key material unless it sits under a ``*digest*``/``*hash*``
  key, whose values skip this step.
* A key whose last word describes the secret rather than holding it (``auth_status``, ``token_type``,
  ``session_count``, ``gen_ai.usage.input_tokens``) is an ordinary key: "failed" under it stays.

``for_approver`` is the approver's rule: secrets go, personal data (the e-mail recipient) stays, for args
and resource alike; ``hidden_fields`` names what was hidden so the approver is told.

Output is a new structure (pydantic models and dataclasses become dicts; other objects pass through), and
redaction is idempotent. Strings over 1 MB are cut with a marker, nesting deeper than 50 becomes ``REDACTED``
and a cycle becomes ``[CYCLE]``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from pydantic import BaseModel

__all__ = [
    "CYCLE",
    "MAX_DEPTH",
    "MAX_TEXT",
    "REDACTED",
    "Redactor",
    "for_approver",
    "hidden_fields",
    "redact",
    "redact_text",
]

REDACTED = "[REDACTED]"
CYCLE = "[CYCLE]"
MAX_TEXT = 1_000_000
MAX_DEPTH = 50

_SECRET_KEYS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "authorization",
    "cookie",
    "session",
    "credential",
    "clientsecret",
    "refreshtoken",
    "xapikey",
)
_AUTH = r"auth(?!or(?!i[sz]ation))"  # auth, oauth, authorization; not author, authors, authority
_COUNTERS = frozenset(
    {  # usage counts stay visible although they contain "token"
        "tokens",
        "tokensused",
        "tokencount",
        "numtokens",
        "tokenusage",
        "tokenlimit",
        "tokenbudget",
        "tokenizer",
        "tokensremaining",
        "inputtokens",
        "outputtokens",
        "totaltokens",
        "prompttokens",
        "completiontokens",
        "cachedtokens",
        "reasoningtokens",
        "audiotokens",
        "maxtokens",
        "maxinputtokens",
        "maxoutputtokens",
        "maxcompletiontokens",
        "cachereadinputtokens",
        "cachecreationinputtokens",
        "cachereadtokens",
        "cachecreationtokens",
        "inputtokendetails",
        "outputtokendetails",
        "inputtokensdetails",
        "outputtokensdetails",
        "prompttokensdetails",
        "completiontokensdetails",
        "acceptedpredictiontokens",
        "rejectedpredictiontokens",
    }
)
_NORM = re.compile(r"[\s_.-]+")
_LAST_WORD = re.compile(r"([A-Za-z][a-z0-9]*|[0-9]+)[^A-Za-z0-9]*\Z")
_LAST_PART = re.compile(r"[^./:]*\Z")
# The last word of a key that says something *about* a credential, never the credential itself.
_DESCRIPTORS = frozenset(
    [
        "status",
        "reason",
        "outcome",
        "result",
        "error",
        "errors",
        "count",
        "type",
        "kind",
        "ttl",
        "expires",
        "expiry",
        "length",
        "enabled",
        "required",
        "method",
        "provider",
        "scheme",
        "source",
        "failed",
        "ok",
    ]
)

_PEM = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|\Z)", re.S
)
_URL_CREDS = re.compile(r"://[^\s/@:\"'<>]*:[^\s/\"'<>]*@")  # the scheme before :// and the host stay
_SLACK_HOOK = re.compile(r"(https://hooks\.slack\.com/services/)[A-Za-z0-9_/]+")
# Each starts with a literal (fast scan); the lookbehind after it checks the character before the token.
_TOKENS = tuple(
    re.compile(p, re.A)
    for p in (
        r"sk-(?<![A-Za-z0-9]sk-)[\w-]{20,}",  # OpenAI sk-, sk-proj-; Anthropic sk-ant- (needs an uppercase)
        r"[sr]k_(?<![A-Za-z0-9][sr]k_)(?:live|test)_[A-Za-z0-9]{10,}",  # Stripe
        r"A(?<![A-Za-z0-9]A)(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z0-9]{16}(?![A-Za-z0-9])",  # AWS access key id
        r"gh(?<![A-Za-z0-9]gh)[pousr]_[A-Za-z0-9]{30,}",  # GitHub classic tokens
        r"github_pat_(?<![A-Za-z0-9]github_pat_)\w{22,}",  # GitHub fine-grained tokens
        r"xox(?<![A-Za-z0-9]xox)[abeoprs]-[\w-]{10,}",  # Slack
        r"AIza(?<![A-Za-z0-9]AIza)[\w-]{35}",  # Google API key
        r"eyJ(?<![\w-]eyJ)[\w-]+\.[\w-]+\.[\w-]*",  # JWT
    )
)
_KEY_HINTS = ("pass", "pwd", "secret", "token", "key", "auth", "cookie", "session", "cred")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_KEY_WORD = re.compile(r"[\w.-]*", re.A)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASSIGN_KEY = re.compile(r"(?<![\w.-])([A-Za-z_][\w.-]*)(\\?[\"']?)[ \t]*[:=][ \t]*(?!=)", re.A)
_SCHEME = r"(?:bearer|basic|token|digest|bot)\s+"
_VALUE = re.compile(
    rf"(?:(?P<scheme>{_SCHEME})|(?!{_SCHEME}))(?!\[REDACTED\])(?:"
    r'\\"(?P<eq>(?:(?!\\").)*)\\"'  # \"...\" inside a JSON-encoded string
    r'|"(?P<dq>(?:[^"\\\n]|\\.)*)"|\'(?P<sq>(?:[^\'\\\n]|\\.)*)\''
    r"|(?P<uq>\\?[\"']?)(?P<u>[^\s,;&\"'{}\[\]()<>]+))",
    re.I | re.A,
)
_QUOTES = (("eq", '\\"'), ("dq", '"'), ("sq", "'"))
_LINE_VALUE = re.compile(r"(?!\[REDACTED\])[^\r\n\"']+")
_BEARER = re.compile(r"\b(bearer|basic)(\s+)([\w.~+/-]{8,}=*)", re.I | re.A)
_WORD = re.compile(r"[A-Za-z][a-z]*")
_DIGIT_RUN = re.compile(r"\d(?<![A-Za-z0-9]\d)(?:[ -]?\d){12,}(?![A-Za-z0-9])", re.A)  # not inside a hex id
_CARD_PREFIX = re.compile(r"[3456]|2[2-7]")
_GROUP = re.compile(r"[0-9]+")
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")  # Unicode too
_PHONE = re.compile(
    r"(?=[+(\d])(?<![\w+.-])(?:\+\d{8,15}"
    r"|(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{1,5}(?:[ .-]\d{1,5}){1,5})(?![\w-]|\.\d)",
    re.A,
)
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4}")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_MIN_HEX_KEY = 64  # shorter hex runs are ids and digests (uuid hex 32, trace id 32, git sha 40)
_HEX_ID = re.compile(
    r"(?<![A-Za-z0-9])(?:[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}|[0-9a-f]{8,63}|[0-9A-F]{8,63})"
    r"(?![A-Za-z0-9])"
)
_MIN_RANDOM = 24
_HEX_KEY = re.compile(r"(?<![A-Za-z0-9])(?:[0-9a-f]{64,}|[0-9A-F]{64,})(?![A-Za-z0-9])")
_SEGMENT = re.compile(r"[A-Za-z0-9]+")
_PIECE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_TAIL = re.compile(r"\s\S*\Z")


def _normalise(key: str) -> str:
    return _NORM.sub("", key.lower())


def _shannon(text: str) -> float:
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def _looks_random(token: str) -> bool:
    """Whether a base64/hex-alphabet run looks like random key material rather than a name or a path."""
    core = token.rstrip("=")
    n = len(core)
    if _UUID.fullmatch(core):
        return False
    if _HEX.fullmatch(core):
        return n >= _MIN_HEX_KEY and not core.isdigit() and not core.isalpha() and _shannon(core) >= 2.5
    if _HEX_ID.search(core):  # ids inside a name or path: judge what is around them
        return any(len(p) >= _MIN_RANDOM and _looks_random(p) for p in _HEX_ID.split(core))
    if sum(any(test(c) for c in core) for test in (str.islower, str.isupper, str.isdigit)) < 2:
        return False
    segments = _SEGMENT.findall(core)
    letters = sum(map(len, segments))
    breaks = sum(len(_PIECE.findall(s)) - 1 for s in segments)  # class changes inside words
    entropy, density = _shannon(core), breaks / letters
    if entropy < min(4.2, 3.3 + 0.03 * (n - 24)):
        return False
    return density >= max(0.18, 0.3 - 0.004 * (n - 24)) or (
        n >= 32 and density >= 0.12 and entropy >= 3.9 + 0.015 * n
    )


def _luhn(digits: str) -> bool:
    doubled = (int(d) * 2 for d in digits[-2::-2])
    return (sum(map(int, digits[-1::-2])) + sum(d - 9 if d > 9 else d for d in doubled)) % 10 == 0


def _token(match: re.Match[str]) -> str:
    token = match.group(0)
    return token if token.startswith("sk-") and not any(c.isupper() for c in token) else REDACTED  # slugs


def _cards(match: re.Match[str]) -> str:
    """Redact Luhn-valid 13-19 digit windows of 3+ digit groups inside a run of digit groups."""
    run = match.group(0)
    groups = [(g.start(), g.end()) for g in _GROUP.finditer(run)]
    out, pos, i = [], 0, 0
    while i < len(groups):
        best, digits = None, ""
        for j in range(i, len(groups)):
            a, b = groups[j]
            digits += run[a:b]
            if b - a < 3 or len(digits) > 19:
                break
            if len(digits) >= 13 and _CARD_PREFIX.match(digits) and _luhn(digits):
                best = j
        if best is None:
            i += 1
            continue
        out += [run[pos : groups[i][0]], REDACTED]
        pos, i = groups[best][1], best + 1
    return "".join(out) + run[pos:]


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    if not 9 <= sum(c.isdigit() for c in text) <= 15 or _DATE.search(text) or _IPV4.fullmatch(text):
        return text
    if text.startswith("+") or "(" in text:
        return REDACTED
    groups = re.split(r"[ .-]", text)
    seps = set(re.findall(r"[ .-]", text))
    if seps == {"-"} or (seps == {"."} and len(groups[-1]) >= 4):
        return REDACTED if len(groups) >= 3 else text
    return REDACTED if seps == {" "} and text.startswith("0") else text


def _bearer(match: re.Match[str]) -> str:
    scheme, space, tok = match.groups()
    if _WORD.fullmatch(tok.rstrip("=.~-")):
        return match.group(0)  # prose: "bearer instrument", "Basic Authentication"
    if scheme.lower() == "basic" and not re.search(r"[0-9+/=]|.[A-Z]", tok):
        return match.group(0)
    return scheme + space + REDACTED


def _truncate(text: str) -> str:
    marker = f"...[TRUNCATED from {len(text)} chars]"
    kept = text[: MAX_TEXT - len(marker)]
    tail = _TAIL.search(kept, len(kept) - 4096)  # drop a token cut in half, so no partial secret survives
    return (kept[: tail.start() + 1] if tail else kept) + marker


class Redactor:
    """Configurable redaction of nested values and free text (see the module docstring for the rules)."""

    def __init__(
        self,
        *,
        extra_keys: Iterable[str] = (),
        emails: bool = True,
        phones: bool = True,
        entropy: bool = True,
        min_entropy_len: int = 24,
    ) -> None:
        extra = [k for k in map(_normalise, extra_keys) if k]
        self._key_re = re.compile("|".join([*map(re.escape, (*_SECRET_KEYS, *extra)), _AUTH]))
        self._hint = re.compile("|".join(map(re.escape, (*_KEY_HINTS, *(k[:3] for k in extra)))))
        self.emails, self.phones, self.entropy = emails, phones, entropy
        self._candidate = re.compile(rf"[A-Za-z0-9+/_-]{{{min_entropy_len},}}={{0,2}}")

    def is_secret_key(self, key: str) -> bool:
        """Whether the value under this key name is redacted whole."""
        norm = _normalise(key)
        if norm in _COUNTERS or _normalise(_LAST_PART.search(key).group(0)) in _COUNTERS:
            return False  # usage counters, also namespaced: gen_ai.usage.input_tokens
        last = _LAST_WORD.search(key)
        if last is not None and last.group(1).lower() in _DESCRIPTORS and len(last.group(1)) < len(norm):
            return False  # auth_status, token_type: about a credential, not one
        return self._key_re.search(norm) is not None

    def redact(self, value: Any) -> Any:
        """Return a redacted copy of ``value``; the input is never mutated."""
        return self._walk(value, 0, False, set())

    def redact_text(self, text: str) -> str:
        """Redact secret and personal value patterns inside free text."""
        return self._text(text, self.entropy)

    def structlog_processor(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor: place it after enrichment and before the renderer."""
        return self.redact(event_dict)

    def _walk(self, value: Any, depth: int, exempt: bool, seen: set[int]) -> Any:
        if isinstance(value, str):
            return self._text(value, self.entropy and not exempt)
        if value is None or isinstance(value, (bool, int, float, bytes)):
            return value
        is_dc = dataclasses.is_dataclass(value) and not isinstance(value, type)
        if not (is_dc or isinstance(value, (BaseModel, Mapping, list, tuple, set, frozenset))):
            return value
        if depth > MAX_DEPTH:
            return REDACTED
        ident = id(value)
        if ident in seen:
            return CYCLE
        seen.add(ident)
        try:
            if isinstance(value, BaseModel):
                value = value.model_dump()
            elif is_dc:
                value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            if isinstance(value, Mapping):
                return self._walk_map(value.items(), depth, exempt, seen)
            items = [self._walk(v, depth + 1, exempt, seen) for v in value]
            if isinstance(value, tuple):
                return value._make(items) if hasattr(value, "_make") else tuple(items)
            if isinstance(value, (set, frozenset)):
                try:
                    return frozenset(items) if isinstance(value, frozenset) else set(items)
                except TypeError:  # a member became an unhashable dict
                    return items
            return items
        finally:
            seen.discard(ident)

    def _walk_map(
        self, items: Iterable[tuple[Any, Any]], depth: int, exempt: bool, seen: set[int]
    ) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, val in items:
            if isinstance(key, str):
                new_key = self._text(key, self.entropy and not exempt)
                if self.is_secret_key(key) or self.is_secret_key(new_key):
                    new_val: Any = REDACTED
                else:
                    norm = _normalise(new_key)
                    child_exempt = exempt or "digest" in norm or "hash" in norm
                    new_val = self._walk(val, depth + 1, child_exempt, seen)
                if new_key in out:  # two keys redacted to the same text: keep both
                    n = 2
                    while f"{new_key}#{n}" in out:
                        n += 1
                    new_key = f"{new_key}#{n}"
            else:
                new_key = self._walk(key, depth + 1, exempt, seen) if isinstance(key, tuple) else key
                new_val = self._walk(val, depth + 1, exempt, seen)
            out[new_key] = new_val
        return out

    def _text(self, text: str, entropy: bool) -> str:
        for _ in range(3):
            if len(text) > MAX_TEXT:
                text = _truncate(text)
            for _ in range(4):  # until stable, which makes redaction idempotent
                new = self._pass(text, entropy)
                if new == text:
                    break
                text = new
            if len(text) <= MAX_TEXT:
                return text
        return text[:MAX_TEXT]

    def _pass(self, text: str, entropy: bool) -> str:
        if "PRIVATE KEY" in text:
            text = _PEM.sub(REDACTED, text)
        if "://" in text:
            text = _SLACK_HOOK.sub(rf"\1{REDACTED}", _URL_CREDS.sub(f"://{REDACTED}@", text))
        for pattern in _TOKENS:
            text = pattern.sub(_token, text)
        text = self._assignments(text)
        text = _BEARER.sub(_bearer, text)
        if self.emails and "@" in text:
            text = _EMAIL.sub(REDACTED, text)
        if self.phones:
            text = _PHONE.sub(_phone, text)
        text = _DIGIT_RUN.sub(_cards, text)
        if entropy:
            text = _HEX_KEY.sub(lambda m: REDACTED if _looks_random(m.group(0)) else m.group(0), text)
            text = self._candidate.sub(lambda m: REDACTED if _looks_random(m.group(0)) else m.group(0), text)
        return text

    def _assignments(self, text: str) -> str:
        """``password=...``, ``token: ...``, ``"api_key": "..."``: keep the key, redact the value."""
        out: list[str] = []
        pos = scanned = 0
        for hint in self._hint.finditer(text.translate(_ASCII_LOWER)):  # cheap scan for likely key names
            if hint.start() < scanned:
                continue
            start = hint.start()
            while start > 0 and hint.start() - start < 256 and text[start - 1] in _KEY_CHARS:
                start -= 1
            m = _ASSIGN_KEY.match(text, start)
            scanned = m.end() if m else _KEY_WORD.match(text, hint.end()).end()
            if m is None or start < pos or not self.is_secret_key(m.group(1)):
                continue
            v = _VALUE.match(text, m.end())
            if v is None:
                continue
            end, scheme = v.end(), v.group("scheme") or ""
            if v.group("u") is not None and "cookie" in m.group(1).lower():  # a cookie header: the whole line
                line = _LINE_VALUE.match(text, m.end())
                end, value = (line.end() if line else end), REDACTED
            else:  # keep the scheme word and the quotes around the value
                quote = next((q for g, q in _QUOTES if v.group(g) is not None), v.group("uq"))
                value = f"{scheme}{quote}{REDACTED}{quote if v.group('u') is None else ''}"
            out += [text[pos : m.end()], value]
            pos = scanned = end
        return "".join(out) + text[pos:] if out else text


_DEFAULT = Redactor()


def redact(value: Any) -> Any:
    """Redact a nested value with the default :class:`Redactor`."""
    return _DEFAULT.redact(value)


def redact_text(text: str) -> str:
    """Redact free text with the default :class:`Redactor`."""
    return _DEFAULT.redact_text(text)


_APPROVER = Redactor(emails=False, phones=False)


def for_approver(value: Any) -> Any:
    """What an approver sees: secrets go, personal data stays (the approver of an e-mail must see its
    recipient); arguments and resource pass the same rule, so they never disagree."""
    return _APPROVER.redact(value)


def hidden_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths inside `value` where something was hidden (``args.api_key``), to tell the approver."""
    if isinstance(value, str):
        return [path or "value"] if REDACTED in value else []
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in hidden_fields(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in hidden_fields(v, f"{path}[{i}]")]
    return []
