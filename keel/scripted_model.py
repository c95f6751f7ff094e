"""The offline scripted model: deterministic, tool-calling, and labelled as scripted in every answer.

It is not a language model. It reads the latest request as a list of imperative clauses separated
by `then`, `;` or new lines and turns each into one tool call:

    read <path> | list <path> | write <path>: <text> | delete <path>
    summarize <path> into <path> | search <words> in <path> | email <address> about <subject>: <text>
    <tool> key=value key="two words" …  |  <tool> {"key": "value"}    (any tool it is given, by its name)

It answers with a summary of what the tools returned. `make run` uses it so the whole runtime can
be exercised without a network or model weights.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from keel.prompts import PLAN_INSTRUCTION, is_continuation

__all__ = ["ScriptedChatModel", "SCRIPTED_LABEL"]

SCRIPTED_LABEL = "[keel offline scripted model — not an LLM]"

_SPLIT = re.compile(r"\s*(?:;|\n|\bthen\b|\band then\b)\s*", re.IGNORECASE)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^summari[sz]e\s+(?P<src>\S+)\s+(?:into|to)\s+(?P<dst>\S+)$", re.I), "summarize"),
    (re.compile(r"^read\s+(?P<path>\S+)$", re.I), "read_file"),
    (re.compile(r"^list(?:\s+files)?(?:\s+in)?(?:\s+(?P<path>\S+))?$", re.I), "list_files"),
    (re.compile(r"^write\s+(?P<path>\S+?)\s*:\s*(?P<content>.+)$", re.I | re.S), "write_file"),
    (re.compile(r"^delete\s+(?P<path>\S+)$", re.I), "delete_file"),
    (
        re.compile(r"^search\s+(?:notes\s+)?(?:for\s+)?(?P<query>.+?)(?:\s+in\s+(?P<path>\S+))?$", re.I),
        "search_notes",
    ),
    (
        re.compile(
            r"^(?:e-?mail|send email to)\s+(?P<to>\S+@\S+)\s+about\s+(?P<subject>[^:]+):\s*(?P<body>.+)$",
            re.I | re.S,
        ),
        "send_email",
    ),
]


def _clauses(task: str) -> list[str]:
    return [c.strip().rstrip(".") for c in _SPLIT.split(task) if c and c.strip().rstrip(".")]


def _named_call(clause: str, tools: frozenset[str] | None) -> tuple[str, dict[str, Any]] | None:
    """`<tool> key=value …` or `<tool> {json}` for a tool the model was given; None otherwise. `tools`
    None (a call without tools: the plan) takes any name followed by arguments."""
    name, _, rest = clause.partition(" ")
    rest = rest.strip()
    if name not in (tools or ()) and (tools is not None or not name.isidentifier() or not rest):
        return None
    if rest.startswith("{"):
        try:
            args = json.loads(rest)
        except ValueError:
            return None
        return (name, args) if isinstance(args, dict) else None
    try:
        words = shlex.split(rest)
    except ValueError:
        return None
    pairs = [w.partition("=") for w in words]
    if any(not sep or not key for key, sep, _ in pairs):
        return None
    # Values stay text: the tool's schema converts "12.5" to a number where it wants one (lax
    # validation), whereas a number where it wants text would be refused.
    return name, {key: value for key, _, value in pairs}


def _tool_names(tools: Any) -> frozenset[str]:
    """The names of the tools bound to a call (OpenAI tool schemas)."""
    names = set()
    for schema in tools or ():
        if isinstance(schema, dict):
            names.add(schema.get("function", {}).get("name") or schema.get("name"))
    return frozenset(n for n in names if n)


def _actions(task: str, tools: frozenset[str] | None = frozenset()) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls the task asks for, in order; `summarize` becomes a read then a write; a clause
    naming one of `tools` calls it with the arguments written after its name."""
    actions: list[tuple[str, dict[str, Any]]] = []
    for clause in _clauses(task):
        if named := _named_call(clause, tools):
            actions.append(named)
            continue
        for pattern, kind in _PATTERNS:
            if m := pattern.match(clause):
                groups = {k: v for k, v in m.groupdict().items() if v is not None}
                if kind == "summarize":
                    actions.append(("read_file", {"path": groups["src"]}))
                    actions.append(("write_file", {"path": groups["dst"], "content": "@summary"}))
                elif kind == "send_email":
                    actions.append(
                        (
                            kind,
                            {
                                "to": groups["to"],
                                "subject": groups["subject"].strip(),
                                "body": groups["body"].strip(),
                            },
                        )
                    )
                else:
                    actions.append((kind, groups))
                break
    return actions


def _target(args: dict[str, Any]) -> str:
    """What a call acts on, for the plan and the answer: its path, recipient or query, else its first
    argument."""
    for key in ("path", "to", "query"):
        if args.get(key):
            return str(args[key])
    return str(next(iter(args.values()), ""))


def _summary(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    heads = [ln.lstrip("#").strip() for ln in lines if ln.startswith("#")]
    points = heads or lines[:5]
    return "# Summary\n\n" + "\n".join(f"- {p}" for p in points[:8]) + "\n"


def _latest_request(messages: list[BaseMessage]) -> tuple[int, str]:
    """The request to act on: a `keel resume` continuation carries on the request before it."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, HumanMessage) and not is_continuation(message):
            if message.content == PLAN_INSTRUCTION:  # the plan node's ask, after the request
                continue
            return index, str(message.content)
    return -1, ""


def _tokens(text: str) -> int:
    """The scripted model's token count: about one per four characters, at least one."""
    return len(text) // 4 + 1


def _usage(messages: list[BaseMessage], reply: str) -> dict[str, int]:
    prompt = sum(len(str(m.content)) for m in messages) // 4 + 1
    out = _tokens(reply)
    return {"input_tokens": prompt, "output_tokens": out, "total_tokens": prompt + out}


def _cut(message: AIMessage, max_tokens: int | None) -> AIMessage:
    """Honour `max_tokens` as a provider does: output past the bound is cut, `finish_reason` is `length`.

    A tool call that does not fit is dropped whole (a provider would return it truncated, unparseable).
    """
    if max_tokens is None or _tokens(str(message.content) + str(message.tool_calls)) <= max_tokens:
        return message
    text = str(message.content)[: 4 * (max_tokens - 1)]
    return AIMessage(content=text, response_metadata={"finish_reason": "length"})


class ScriptedChatModel(BaseChatModel):
    """A deterministic offline stand-in for an LLM, clearly labelled as such."""

    model_name: str = "keel-scripted"
    max_tokens: int | None = None
    """Output bound; a `max_tokens` passed with the call (keel binds it on every call) takes precedence."""

    @property
    def _llm_type(self) -> str:
        return "keel-scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=list(tools), **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        start, task = _latest_request(messages)
        tools = kwargs.get("tools")
        actions = _actions(task, _tool_names(tools) if tools else None)
        bound = kwargs.get("max_tokens", self.max_tokens)
        if not kwargs.get("tools"):
            message = _cut(AIMessage(content=self._plan(actions)), bound)
            message.usage_metadata = _usage(messages, str(message.content))
        else:
            message = _cut(self._act(messages[start + 1 :], actions, start, task), bound)
            message.usage_metadata = _usage(messages, str(message.content) + str(message.tool_calls))
        return ChatResult(generations=[ChatGeneration(message=message)])

    @staticmethod
    def _plan(actions: list[tuple[str, dict[str, Any]]]) -> str:
        if not actions:
            return f"{SCRIPTED_LABEL} Plan: answer directly (no tool needed)."
        steps = "; ".join(f"{i}. {name} {_target(args)}".strip() for i, (name, args) in enumerate(actions, 1))
        return f"{SCRIPTED_LABEL} Plan: {steps}"

    def _act(
        self, since: list[BaseMessage], actions: list[tuple[str, dict[str, Any]]], start: int, task: str
    ) -> AIMessage:
        done = sum(1 for m in since if isinstance(m, AIMessage) and m.tool_calls)
        results = [m for m in since if isinstance(m, ToolMessage)]
        if done < len(actions):
            name, args = actions[done]
            if args.get("content") == "@summary":
                last = str(results[-1].content) if results else ""
                args = {**args, "content": _summary(last)}
            seed = f"{start}:{task}:{done}".encode()
            call_id = "call_" + hashlib.sha256(seed).hexdigest()[:16]
            return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])
        return AIMessage(content=self._answer(task, actions, results))

    @staticmethod
    def _answer(task: str, actions: list[tuple[str, dict[str, Any]]], results: list[ToolMessage]) -> str:
        if not actions:
            return (
                f"{SCRIPTED_LABEL} I can only follow simple instructions offline: read, list, write, "
                f"summarize, search, delete and email, or call a tool by name (`<tool> key=value`). "
                f"Your request was: {task!r}"
            )
        lines = [f"{SCRIPTED_LABEL} Here is what happened:"]
        for (name, args), result in zip(actions, results, strict=False):
            target = _target(args)
            first = str(result.content).strip().splitlines()[0] if str(result.content).strip() else "(empty)"
            outcome = "failed" if result.status == "error" else "done"
            lines.append(f"- {name} {target}: {outcome} — {first[:160]}")
        return "\n".join(lines)
