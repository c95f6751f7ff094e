"""A deterministic fake chat model for tests: scripted turns, real `bind_tools`, usage reported."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

__all__ = ["FakeChatModel", "tool_call", "Slow"]

Turn = AIMessage | str | BaseException | Callable[[list[BaseMessage]], AIMessage]


def tool_call(name: str, call_id: str | None = None, **args: Any) -> AIMessage:
    """An AIMessage asking for one tool call."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id or f"call_{name}"}])


class Slow:
    """A turn that takes `seconds` before answering with `then`."""

    def __init__(self, seconds: float, then: Turn) -> None:
        self.seconds, self.then = seconds, then


class FakeChatModel(BaseChatModel):
    """Scripted turns for tool-bound calls (decide), a fixed plan for tool-less calls (plan).

    Each turn is an AIMessage, a string (a plain answer), an exception (raised) or a function of the
    messages. Running out of turns raises, so a test never passes by accident.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    turns: list[Any] = Field(default_factory=list)
    plan: str = "1. do the task"
    usage: tuple[int, int] = (10, 5)
    model_name: str = "fake-model"
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _index: int = PrivateAttr(default=0)
    calls: list[dict[str, Any]] = Field(default_factory=list)
    """Every request seen: {"messages": [...], "tools": [names] | None}."""

    def __init__(self, turns: Sequence[Turn] = (), **kwargs: Any) -> None:
        super().__init__(turns=list(turns), **kwargs)

    @property
    def _llm_type(self) -> str:
        return "keel-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    @property
    def remaining(self) -> int:
        """Scripted turns not used yet."""
        return len(self.turns) - self._index

    def _next(self, messages: list[BaseMessage], tools: Any) -> Turn:
        self.calls.append(
            {"messages": list(messages), "tools": [t["function"]["name"] for t in tools] if tools else None}
        )
        if not tools:
            return AIMessage(content=self.plan)
        with self._lock:
            if self._index >= len(self.turns):
                raise RuntimeError(f"FakeChatModel ran out of scripted turns after {self._index}")
            turn = self.turns[self._index]
            self._index += 1
        return turn

    def _resolve(self, turn: Turn, messages: list[BaseMessage]) -> ChatResult:
        if isinstance(turn, BaseException):
            raise turn
        if callable(turn) and not isinstance(turn, AIMessage):
            turn = turn(messages)
        message = AIMessage(content=turn) if isinstance(turn, str) else turn.model_copy()
        inp, out = self.usage
        message.usage_metadata = {"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
        message.response_metadata = {"model_name": self.model_name}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn = self._next(messages, kwargs.get("tools"))
        if isinstance(turn, Slow):
            time.sleep(turn.seconds)
            turn = turn.then
        return self._resolve(turn, messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        turn = self._next(messages, kwargs.get("tools"))
        if isinstance(turn, Slow):
            await asyncio.sleep(turn.seconds)
            turn = turn.then
        return self._resolve(turn, messages)
