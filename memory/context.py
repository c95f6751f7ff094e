"""Context-window management: fit the messages of a model call to the model's context budget.

Kept: the system prompt (which carries the plan and recalled memories), the latest human request (never
cut: if it cannot fit, `ContextOverflow` is raised), anything appended for this call (`tail`) and as many
recent turns as fit. Older turns are trimmed and replaced by a
digest line each (from working memory, rebuilt from the messages on a miss), itself bounded. Tool results
longer than `max_tool_chars` are truncated with a marker. An AIMessage with tool calls and its
ToolMessages form one unit: kept or trimmed together, never split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

from keel.memory.working import MAX_LINES, ThreadDigest, WorkingMemory
from keel.settings import Settings

__all__ = [
    "ContextOverflow",
    "ContextBudget",
    "ContextFitter",
    "fit_messages",
    "count_tokens",
    "digest_line",
    "TRUNCATED",
]

TRUNCATED = "[… {n} characters truncated by keel to fit the context window]"
TRIMMED_HEADER = "Earlier in this thread ({n} older messages trimmed to fit the context window):"


class ContextOverflow(ValueError):
    """Even the system prompt and the pinned messages cannot be made to fit the model's budget."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextBudget:
    """How many input tokens one call may send."""

    max_input_tokens: int
    max_tool_chars: int = 4000
    """Tool results longer than this are truncated (with a marker) before the call."""
    digest_share: float = 0.15
    """Share of the budget the digest of trimmed turns may take."""


def count_tokens(messages: Sequence[BaseMessage], tools: Sequence[Any] | None = None) -> int:
    """Offline token estimate (langchain-core's approximate counter; no tokenizer download)."""
    return count_tokens_approximately(list(messages), tools=list(tools) if tools else None)


def _text(message: BaseMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else message.text


def digest_line(message: BaseMessage, width: int = 160) -> str:
    """One line standing for a message once it is trimmed."""
    text = " ".join(_text(message).split())
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = ", ".join(
            f"{c['name']}({json.dumps(c['args'], default=str)[:80]})" for c in message.tool_calls
        )
        return f"assistant called {calls}"[:width]
    if isinstance(message, ToolMessage):
        return f"tool {message.name or 'result'}: {text}"[:width]
    role = {"human": "user", "ai": "assistant"}.get(message.type, message.type)
    return f"{role}: {text}"[:width]


def _truncate(message: BaseMessage, limit: int) -> BaseMessage:
    text = _text(message)
    if len(text) <= limit:
        return message
    marker = TRUNCATED.format(n=len(text) - limit)
    return message.model_copy(update={"content": text[:limit] + "\n" + marker})


def _shorten_calls(message: AIMessage, limit: int) -> AIMessage:
    """Tool-call arguments longer than `limit` (as JSON) are shown to the model shortened, with a marker."""
    calls, changed = [], False
    for call in message.tool_calls:
        raw = json.dumps(call["args"], default=str)
        if len(raw) > limit:
            call = {
                **call,
                "args": {"_keel_truncated": raw[:limit] + " " + TRUNCATED.format(n=len(raw) - limit)},
            }
            changed = True
        calls.append(call)
    return message.model_copy(update={"tool_calls": calls}) if changed else message


def _shrink(message: BaseMessage, limit: int) -> BaseMessage:
    if isinstance(message, ToolMessage):
        return _truncate(message, limit)
    if isinstance(message, AIMessage) and message.tool_calls:
        return _shorten_calls(message, limit)
    return message


def _units(history: Sequence[BaseMessage]) -> list[list[int]]:
    """Indices grouped so an AIMessage with tool calls and its ToolMessages stay together."""
    units: list[list[int]] = []
    open_ids: set[str] = set()
    for i, m in enumerate(history):
        if isinstance(m, ToolMessage) and units and m.tool_call_id in open_ids:
            units[-1].append(i)
            continue
        units.append([i])
        open_ids = {c["id"] for c in m.tool_calls if c.get("id")} if isinstance(m, AIMessage) else set()
    return units


def fit_messages(
    system: SystemMessage,
    history: Sequence[BaseMessage],
    budget: ContextBudget,
    *,
    tail: Sequence[BaseMessage] = (),
    digest: Sequence[str] = (),
    tools: Sequence[Any] | None = None,
) -> list[BaseMessage]:
    """`[system, *kept history, *tail]` within `budget.max_input_tokens` (digest[i] stands for history[i])."""
    sized = _Sized.of(system, history, budget, tail, tools)
    return sized.whole() if sized.fits else sized.trimmed(digest)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Sized:
    """One call's messages measured against its budget: sent whole when they fit, else trimmed."""

    system: SystemMessage
    msgs: list[BaseMessage]
    tail: list[BaseMessage]
    budget: ContextBudget
    tools: Sequence[Any] | None
    fixed: int
    units: list[list[int]]
    costs: list[int]

    @classmethod
    def of(
        cls,
        system: SystemMessage,
        history: Sequence[BaseMessage],
        budget: ContextBudget,
        tail: Sequence[BaseMessage],
        tools: Sequence[Any] | None,
    ) -> _Sized:
        msgs = [_shrink(m, budget.max_tool_chars) for m in history]
        units = _units(msgs)
        return cls(
            system=system,
            msgs=msgs,
            tail=list(tail),
            budget=budget,
            tools=tools,
            fixed=count_tokens([system, *tail], tools),
            units=units,
            costs=[count_tokens([msgs[i] for i in u]) for u in units],
        )

    @property
    def fits(self) -> bool:
        """Every message fits as it is: nothing is trimmed, so no digest is needed."""
        return self.fixed + sum(self.costs) <= self.budget.max_input_tokens

    def whole(self) -> list[BaseMessage]:
        return [self.system, *self.msgs, *self.tail]

    def trimmed(self, digest: Sequence[str]) -> list[BaseMessage]:
        """The newest turns that fit, the latest request pinned, the trimmed ones as digest lines."""
        msgs, units, costs, limit = self.msgs, self.units, self.costs, self.budget.max_input_tokens
        last_human = max((k for k, u in enumerate(units) if isinstance(msgs[u[0]], HumanMessage)), default=-1)
        pinned = {last_human, len(units) - 1} - {-1}
        room = limit - self.fixed - sum(costs[k] for k in pinned)
        keep = set(pinned)
        for k in range(len(units) - 1, -1, -1):  # newest first
            if k in keep:
                continue
            if costs[k] > room:
                break
            keep.add(k)
            room -= costs[k]
        trimmed = [i for k, u in enumerate(units) if k not in keep for i in u]
        share = max(0, min(room, int(limit * self.budget.digest_share)))
        system = _with_digest(self.system, trimmed, digest, share)
        kept = [i for k, u in enumerate(units) if k in keep for i in u]
        out = [system, *(msgs[i] for i in kept), *self.tail]
        request = {1 + kept.index(i) for i in units[last_human]} if last_human >= 0 else set()
        return _squeeze(out, limit, self.tools, request)


def _with_digest(
    system: SystemMessage, trimmed: list[int], digest: Sequence[str], room: int
) -> SystemMessage:
    if not trimmed:
        return system
    header = TRIMMED_HEADER.format(n=len(trimmed))
    lines = [digest[i] for i in trimmed if i < len(digest) and digest[i]]
    chosen: list[str] = []
    used = count_tokens([SystemMessage(header)]) + 8
    for line in reversed(lines):  # the most recent trimmed turns first
        cost = len(line) // 4 + 2
        if used + cost > room:
            break
        chosen.append(line)
        used += cost
    body = "\n".join(f"- {line}" for line in reversed(chosen))
    note = header + ("\n" + body if body else " (no digest kept)")
    if used > room:
        return system
    return system.model_copy(update={"content": f"{_text(system)}\n\n{note}"})


def _squeeze(
    out: list[BaseMessage], limit: int, tools: Sequence[Any] | None, request: set[int]
) -> list[BaseMessage]:
    """Last resort when even the pinned messages do not fit: shorten the longest texts until they do.

    The latest user request (`request`, indices into `out`) is never shortened: a run acting on a cut
    request would report success on a task it never saw whole.
    """
    stuck: set[int] = set(request)
    while (total := count_tokens(out, tools)) > limit:
        candidates = [i for i in range(len(out)) if i not in stuck]
        if not candidates:
            raise ContextOverflow(
                f"the context budget ({limit} tokens) cannot hold the latest request and the pinned messages"
            )
        longest = max(candidates, key=lambda i: len(_text(out[i])))
        text = _text(out[longest])
        keep = max(32, len(text) - (total - limit) * 4 - 128)
        shorter = text[:keep] + "\n" + TRUNCATED.format(n=len(text) - keep)
        if len(shorter) >= len(text):
            stuck.add(longest)
            continue
        out[longest] = out[longest].model_copy(update={"content": shorter})
    return out


class ContextFitter:
    """Fits each model call to its model's budget; keeps the thread's digest in working memory.

    Working memory is touched only when a call's messages overflow the budget (the digest stands for the
    turns trimmed then): a thread that fits costs no working-memory read or write.
    """

    def __init__(self, settings: Settings, working: WorkingMemory) -> None:
        self.settings = settings
        self.working = working

    def budget_for(self, model_name: str) -> ContextBudget:
        window = self.settings.context_budgets.get(model_name, self.settings.context_budget_tokens)
        return ContextBudget(max_input_tokens=max(256, window - self.settings.max_output_tokens))

    async def digest(self, thread_id: str, history: Sequence[BaseMessage]) -> list[str]:
        """One line per message of `history` (cached; rebuilt from the messages on a miss)."""
        n = len(history)
        cached = await self.working.get(thread_id)
        if (
            cached is not None
            and 0 < cached.covered <= n
            and cached.start == max(0, cached.covered - MAX_LINES)
            and str(history[cached.covered - 1].id) == cached.last_id
        ):
            lines = (
                [""] * cached.start + list(cached.lines) + [digest_line(m) for m in history[cached.covered :]]
            )
        else:
            lines = [digest_line(m) for m in history]
        if n and (cached is None or cached.covered != n):
            start = max(0, n - MAX_LINES)
            await self.working.put(
                thread_id,
                ThreadDigest(covered=n, start=start, last_id=str(history[-1].id), lines=tuple(lines[start:])),
            )
        return lines

    async def fit(
        self,
        thread_id: str,
        system: SystemMessage,
        history: Sequence[BaseMessage],
        *,
        model_name: str,
        tail: Sequence[BaseMessage] = (),
        tools: Sequence[Any] | None = None,
    ) -> list[BaseMessage]:
        """The messages for one model call, within the model's budget (the digest read only on overflow)."""
        sized = _Sized.of(system, history, self.budget_for(model_name), tail, tools)
        if sized.fits:
            return sized.whole()
        return sized.trimmed(await self.digest(thread_id, history))
