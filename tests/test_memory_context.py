"""Context-window fitting and working memory: long threads stay within budget, tool pairs stay whole."""

from __future__ import annotations

import uuid

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from keel.memory.context import (
    TRUNCATED,
    ContextBudget,
    ContextFitter,
    ContextOverflow,
    count_tokens,
    fit_messages,
)
from keel.memory.working import InProcessWorkingMemory, RedisWorkingMemory, ThreadDigest, WorkingMemory
from keel.settings import Settings

SYSTEM = SystemMessage("You are keel.\n\nYour plan:\n1. read the file\n2. answer")
TOOLS = [
    {"type": "function", "function": {"name": "read_file", "description": "read a file", "parameters": {}}}
]


def thread(turns: int) -> list[BaseMessage]:
    """A long thread: each turn is a question, a tool call with one or two results, and an answer."""
    out: list[BaseMessage] = []
    for t in range(turns):
        out.append(
            HumanMessage(f"turn {t}: please read notes/{t}.md and tell me what changed " * 3, id=f"h{t}")
        )
        calls = [{"name": "read_file", "args": {"path": f"notes/{t}.md"}, "id": f"c{t}a"}]
        if t % 3 == 0:
            calls.append({"name": "read_file", "args": {"path": f"notes/{t}b.md"}, "id": f"c{t}b"})
        out.append(AIMessage("", tool_calls=calls, id=f"a{t}"))
        for c in calls:
            size = 9000 if t % 7 == 0 else 400
            out.append(ToolMessage("x" * size, tool_call_id=c["id"], name="read_file", id=f"t{c['id']}"))
        out.append(AIMessage(f"answer {t}: the file changed in section {t}", id=f"r{t}"))
    return out


def assert_pairs_whole(messages: list[BaseMessage]) -> None:
    """Every ToolMessage follows its AIMessage; every tool call has all its results."""
    open_calls: set[str] = set()
    for m in messages:
        if isinstance(m, ToolMessage):
            assert m.tool_call_id in open_calls, f"orphan tool result {m.tool_call_id}"
            open_calls.discard(m.tool_call_id)
            continue
        assert not open_calls, f"tool calls without results: {open_calls}"
        if isinstance(m, AIMessage):
            open_calls = {c["id"] for c in m.tool_calls}
    assert not open_calls


def test_200_turn_thread_never_exceeds_the_budget_nor_splits_a_tool_call() -> None:
    budget = ContextBudget(max_input_tokens=6000, max_tool_chars=2000)
    history = thread(200)
    digest = [f"line {i}" for i in range(len(history))]
    for end in range(1, len(history) + 1, 3):  # every prefix the graph would send, mid-turn ones too
        last, following = history[end - 1], history[end] if end < len(history) else None
        if isinstance(following, ToolMessage) or (isinstance(last, AIMessage) and last.tool_calls):
            continue  # the model is never called between a tool call and (all) its results
        out = fit_messages(SYSTEM, history[:end], budget, digest=digest, tools=TOOLS)
        assert count_tokens(out, TOOLS) <= budget.max_input_tokens
        assert out[0].content.startswith(SYSTEM.content)  # system prompt and plan kept
        assert out[-1] is history[end - 1] or out[-1].id == history[end - 1].id  # the newest turn kept
        assert_pairs_whole(out[1:])
    out = fit_messages(SYSTEM, history, budget, digest=digest, tools=TOOLS)
    last_human = next(m for m in reversed(history) if isinstance(m, HumanMessage))
    assert last_human in out
    assert "older messages trimmed" in out[0].content and "- line " in out[0].content


def test_short_threads_are_sent_as_they_are_and_long_tool_results_are_marked() -> None:
    history = thread(2)
    budget = ContextBudget(max_input_tokens=100_000, max_tool_chars=1000)
    out = fit_messages(SYSTEM, history, budget)
    assert len(out) == len(history) + 1
    long = [m for m in out if isinstance(m, ToolMessage) and m.tool_call_id == "c0a"][0]
    assert len(long.content) < 1100 and TRUNCATED.format(n=8000) in long.content
    assert [m.id for m in out[1:]] == [m.id for m in history]


def test_a_latest_request_too_long_for_the_budget_overflows_rather_than_being_cut() -> None:
    # Issue 11 item 5: this used to squeeze the request itself, so the run acted on a cut task.
    history = [HumanMessage("please summarise: " + "word " * 5000, id="h")]
    budget = ContextBudget(max_input_tokens=800)
    with pytest.raises(ContextOverflow, match="latest request"):
        fit_messages(SYSTEM, history, budget, tail=[HumanMessage("Write a plan.")])


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
async def working(request: pytest.FixtureRequest):
    if request.param == "redis":
        store = RedisWorkingMemory(
            "redis://127.0.0.1:6379/0", ttl_s=60, prefix=f"keel-test:{uuid.uuid4().hex[:8]}:wm:"
        )
    else:
        store = InProcessWorkingMemory(ttl_s=60)
    yield store
    await store.aclose()


async def test_working_memory_conformance(working: WorkingMemory) -> None:
    digest = ThreadDigest(covered=2, start=0, last_id="m2", lines=("user: hi", "assistant: hello"))
    assert await working.get("t1") is None
    assert await working.put("t1", digest) is True
    assert await working.get("t1") == digest
    assert await working.get("t2") is None
    await working.drop("t1")
    assert await working.get("t1") is None
    if isinstance(working, RedisWorkingMemory):
        await working.put("t3", digest)
        await working._redis.expire(working._key("t3"), 5)
        await working.get("t3")  # use refreshes the TTL
        assert 55 <= await working.ttl("t3") <= 60
        await working.drop("t3")


async def test_fitter_caches_the_digest_and_rebuilds_it_after_a_loss() -> None:
    working = InProcessWorkingMemory(ttl_s=60)
    fitter = ContextFitter(Settings(context_budget_tokens=4000, max_output_tokens=500), working)
    history = thread(40)
    out = await fitter.fit("t", SYSTEM, history, model_name="m")
    assert count_tokens(out) <= 3500
    cached = await working.get("t")
    assert cached is not None and cached.covered == len(history) and cached.last_id == history[-1].id
    more = [*history, HumanMessage("one more", id="x1")]
    assert await fitter.digest("t", more) == [*list(cached.lines), "user: one more"]
    await working.drop("t")  # the cache is lost: it is rebuilt from the messages, identical
    assert await fitter.digest("t", more) == [*list(cached.lines), "user: one more"]
    assert (await working.get("t")).covered == len(more)


class CountingWorkingMemory(InProcessWorkingMemory):
    """In-process working memory that counts every use."""

    def __init__(self) -> None:
        super().__init__(ttl_s=60)
        self.uses = 0

    async def get(self, thread_id: str) -> ThreadDigest | None:
        self.uses += 1
        return await super().get(thread_id)

    async def put(self, thread_id: str, digest: ThreadDigest) -> bool:
        self.uses += 1
        return await super().put(thread_id, digest)


async def test_a_thread_that_fits_never_touches_working_memory_and_one_that_overflows_does() -> None:
    working = CountingWorkingMemory()
    fitter = ContextFitter(Settings(context_budget_tokens=4000, max_output_tokens=500), working)
    short = thread(2)[5:8]  # a question, a tool call and its result: well within 3500 tokens
    out = await fitter.fit("t", SYSTEM, short, model_name="m")
    assert out[0] is SYSTEM and [m.id for m in out[1:]] == [m.id for m in short]
    assert working.uses == 0, "no working-memory read or write while the messages fit"
    long = thread(40)
    out = await fitter.fit("t", SYSTEM, long, model_name="m")
    assert len(out) < 1 + len(long), "the long thread overflowed: older turns were trimmed"
    assert working.uses == 2 and (await working.get("t")).covered == len(long)  # read, then written


def test_oversized_tool_call_arguments_are_shortened_for_the_model_not_split() -> None:
    huge = AIMessage(
        "", tool_calls=[{"name": "write_file", "args": {"content": "y" * 70_000}, "id": "big"}], id="a"
    )
    refused = ToolMessage("refused: arguments too large", tool_call_id="big", name="write_file", id="t")
    history = [HumanMessage("write it", id="h"), huge, refused]
    out = fit_messages(SYSTEM, history, ContextBudget(max_input_tokens=3000), tools=TOOLS)
    assert count_tokens(out, TOOLS) <= 3000
    assert [m.id for m in out[1:]] == ["h", "a", "t"]
    assert (
        out[2].tool_calls[0]["id"] == "big"
        and "truncated by keel" in out[2].tool_calls[0]["args"]["_keel_truncated"]
    )
    assert huge.tool_calls[0]["args"]["content"] == "y" * 70_000  # the checkpointed message is untouched
