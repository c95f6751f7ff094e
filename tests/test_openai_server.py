"""The fake OpenAI server, driven by the real ChatOpenAI client."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import openai
import pytest
from langchain_core.exceptions import ModelAPIError, ModelRateLimitError, ModelTimeoutError
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from keel.testing.openai_server import FakeOpenAIServer, Fault, Reply


class ReadFile(BaseModel):
    """Read a text file from the workspace."""

    path: str


def chat(server: FakeOpenAIServer, streaming: bool = False, **kwargs: Any) -> ChatOpenAI:
    options: dict[str, Any] = {"max_retries": 0, "timeout": 5.0} | kwargs
    if streaming:
        options |= {"streaming": True, "stream_usage": True}
    return ChatOpenAI(base_url=server.base_url, api_key="test", model="fake-model", **options)


both_modes = pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])


@both_modes
def test_plain_reply_carries_content_and_scripted_usage(server: FakeOpenAIServer, streaming: bool) -> None:
    server.enqueue(Reply(content="hello there, world", usage=(12, 3)))

    message = chat(server, streaming).invoke("hi")

    assert message.content == "hello there, world"
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 12
    assert message.usage_metadata["output_tokens"] == 3
    assert message.usage_metadata["total_tokens"] == 15
    assert message.response_metadata["finish_reason"] == "stop"
    assert server.pending == 0


def test_usage_is_estimated_from_text_length_when_not_scripted(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(content="x" * 40))

    usage = chat(server).invoke("y" * 400).usage_metadata

    assert usage is not None
    assert usage["output_tokens"] == 10
    assert 100 <= usage["input_tokens"] <= 130  # the prompt JSON is a little longer than its text


@both_modes
def test_tool_calls_reach_the_bound_model(server: FakeOpenAIServer, streaming: bool) -> None:
    server.enqueue(
        Reply(tool_calls=[("ReadFile", {"path": "a.txt"}), ("call_custom", "ReadFile", {"path": "b.txt"})])
    )

    message = chat(server, streaming).bind_tools([ReadFile]).invoke("read both files")

    assert isinstance(message, AIMessage)
    assert message.tool_calls == [
        {"name": "ReadFile", "args": {"path": "a.txt"}, "id": "call_1", "type": "tool_call"},
        {"name": "ReadFile", "args": {"path": "b.txt"}, "id": "call_custom", "type": "tool_call"},
    ]
    assert message.response_metadata["finish_reason"] == "tool_calls"


def test_generated_tool_call_ids_count_up_and_restart_on_reset(server: FakeOpenAIServer) -> None:
    model = chat(server).bind_tools([ReadFile])
    server.enqueue(
        Reply(tool_calls=[("ReadFile", {"path": "a"})]), Reply(tool_calls=[("ReadFile", {"path": "b"})])
    )

    assert [model.invoke("go").tool_calls[0]["id"] for _ in range(2)] == ["call_1", "call_2"]
    server.enqueue(Reply(content="left over"))
    server.reset()
    assert (server.pending, server.requests) == (0, [])
    server.enqueue(Reply(tool_calls=[("ReadFile", {"path": "c"})]))
    assert model.invoke("go").tool_calls[0]["id"] == "call_1"


def test_request_bodies_are_recorded_in_order(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(content="one"), Reply(content="two"))
    model = chat(server).bind_tools([ReadFile])

    model.invoke([SystemMessage("be brief"), HumanMessage("first")])
    model.invoke("second")

    first, second = server.requests
    assert first["model"] == "fake-model"
    assert first["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
    ]
    assert [tool["function"]["name"] for tool in first["tools"]] == ["ReadFile"]
    assert first["tools"][0]["function"]["parameters"]["properties"] == {"path": {"type": "string"}}
    assert second["messages"] == [{"role": "user", "content": "second"}]


def test_default_reply_answers_when_the_queue_is_empty(server: FakeOpenAIServer) -> None:
    with pytest.raises(openai.InternalServerError, match="no scripted reply"):
        chat(server).invoke("hi")

    server.default = Reply(content="default answer")
    assert chat(server).invoke("hi").content == "default answer"
    assert chat(server).invoke("again").content == "default answer"


@both_modes
def test_http_500_raises_internal_server_error(server: FakeOpenAIServer, streaming: bool) -> None:
    server.enqueue(Fault.http(500, message="upstream exploded"))

    with pytest.raises(openai.InternalServerError, match="upstream exploded") as caught:
        chat(server, streaming).invoke("hi")

    assert isinstance(caught.value, ModelAPIError)  # langchain-openai wraps it in a subclass of both
    assert caught.value.status_code == 500
    assert caught.value.body == {
        "message": "upstream exploded",
        "type": "server_error",
        "param": None,
        "code": None,
    }


@both_modes
def test_http_429_raises_rate_limit_error_with_retry_after(server: FakeOpenAIServer, streaming: bool) -> None:
    server.enqueue(Fault.http(429, retry_after=1.5))

    with pytest.raises(openai.RateLimitError) as caught:
        chat(server, streaming).invoke("hi")

    assert isinstance(caught.value, ModelRateLimitError)
    assert caught.value.response.headers["retry-after"] == "1.5"
    assert caught.value.code == "rate_limit_exceeded"


def test_client_retries_a_500_and_then_succeeds(server: FakeOpenAIServer) -> None:
    server.enqueue(Fault.http(500), Reply(content="second time lucky"))

    assert chat(server, max_retries=1).invoke("hi").content == "second time lucky"
    assert len(server.requests) == 2


def test_client_honours_retry_after_on_429(server: FakeOpenAIServer) -> None:
    server.enqueue(Fault.http(429, retry_after=0.2), Reply(content="ok"))

    started = time.monotonic()
    assert chat(server, max_retries=1).invoke("hi").content == "ok"
    assert 0.2 <= time.monotonic() - started < 2.0


@both_modes
def test_slow_fault_answers_with_the_next_reply(server: FakeOpenAIServer, streaming: bool) -> None:
    server.enqueue(Fault.slow(0.3), Reply(content="worth the wait"))

    started = time.monotonic()
    assert chat(server, streaming).invoke("hi").content == "worth the wait"
    assert time.monotonic() - started >= 0.3


@both_modes
def test_slow_fault_past_the_client_timeout_raises_timeout(streaming: bool) -> None:
    with FakeOpenAIServer() as server:
        server.enqueue(Fault.slow(3.0))
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError) as caught:
            chat(server, streaming, timeout=0.5).invoke("hi")
        assert isinstance(caught.value, ModelTimeoutError)
        assert time.monotonic() - started < 1.5
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 1.0


def test_abandoned_slow_request_leaves_the_next_reply_queued(server: FakeOpenAIServer) -> None:
    server.enqueue(Fault.slow(0.6), Reply(content="for the retry"))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        chat(server, timeout=0.2).invoke("hi")

    time.sleep(max(0.0, started + 0.9 - time.monotonic()))  # past the end of the slow fault

    assert server.pending == 1
    assert chat(server).invoke("hi again").content == "for the retry"


def test_server_stops_promptly_while_a_slow_fault_is_in_flight() -> None:
    server = FakeOpenAIServer().start()
    server.enqueue(Fault.slow(5.0))
    with httpx.Client(trust_env=False, timeout=10) as client:
        pending = client.build_request("POST", f"{server.base_url}/chat/completions", json={"messages": []})
        worker = threading.Thread(target=lambda: client.send(pending), daemon=True)
        worker.start()
        while not server.requests:
            time.sleep(0.01)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.5
        worker.join(2)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


@both_modes
def test_malformed_body_raises_json_decode_error(server: FakeOpenAIServer, streaming: bool) -> None:
    server.enqueue(Fault.malformed())

    with pytest.raises(json.JSONDecodeError):
        chat(server, streaming).invoke("hi")


async def test_async_client_and_async_context_manager() -> None:
    async with FakeOpenAIServer() as server:
        server.enqueue(
            Reply(content="async hello", usage=(4, 2)), Reply(tool_calls=[("ReadFile", {"path": "x"})])
        )

        message = await chat(server).ainvoke("hi")
        streamed = await chat(server, streaming=True).bind_tools([ReadFile]).ainvoke("read x")

        assert message.content == "async hello"
        assert message.usage_metadata is not None and message.usage_metadata["input_tokens"] == 4
        assert streamed.tool_calls == [
            {"name": "ReadFile", "args": {"path": "x"}, "id": "call_1", "type": "tool_call"}
        ]


def test_models_endpoint_lists_the_model(server: FakeOpenAIServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)

    assert [model.id for model in client.models.list()] == ["fake-model"]


def test_stream_ends_with_usage_chunk_and_done(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(content="a b", usage=(5, 2)))
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}

    response = httpx.post(f"{server.base_url}/chat/completions", json=body, trust_env=False)

    lines = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "[DONE]"
    events = [json.loads(line) for line in lines[:-1]]
    assert {event["object"] for event in events} == {"chat.completion.chunk"}
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"]) == "a b"
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1]["choices"] == []
    assert events[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
