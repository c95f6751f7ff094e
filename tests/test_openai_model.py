"""The graph over the real ChatOpenAI client, against the local OpenAI-compatible test server."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.app.service import Keel
from keel.settings import Settings
from keel.testing.openai_server import FakeOpenAIServer, Fault, Reply


def _settings(tmp_path: Path, server: FakeOpenAIServer, **extra) -> Settings:
    return Settings(
        home=tmp_path,
        model_provider="openai",
        openai_base_url=server.base_url,
        model="fake-model",
        openai_api_key="test-key",
        **extra,
    )


async def test_a_run_over_chat_openai_calls_tools_and_counts_usage(tmp_path: Path, server: FakeOpenAIServer):
    (tmp_path / "workspace" / "shared").mkdir(parents=True)
    (tmp_path / "workspace" / "shared" / "faq.md").write_text("# FAQ\nShip on Tuesdays.\n")
    server.enqueue(
        Reply(content="1. read the FAQ", usage=(100, 10)),
        Reply(tool_calls=[("read_file", {"path": "shared/faq.md"})], usage=(200, 20)),
        Reply(content="We ship on Tuesdays.", usage=(300, 30)),
    )
    async with Keel.open(_settings(tmp_path, server)) as keel:
        out = await keel.run("when do we ship?", user_id="alice")
        ex = await keel.records.get_execution(out.execution_id)
    assert out.path == ["recall", "plan", "decide", "tool", "decide", "finalize"]
    assert out.answer == "We ship on Tuesdays."
    assert (ex.input_tokens, ex.output_tokens) == (600, 60)
    assert float(ex.cost) == pytest.approx((600 * 1.0 + 60 * 2.0) / 1e6)
    plan_req, decide_req, final_req = server.requests
    assert "tools" not in plan_req
    assert {t["function"]["name"] for t in decide_req["tools"]} >= {"read_file", "write_file", "send_email"}
    tool_msg = final_req["messages"][-1]
    assert tool_msg["role"] == "tool" and "Ship on Tuesdays" in tool_msg["content"]


@pytest.mark.parametrize("fault", [Fault.http(500), Fault.http(429, retry_after=0.1), Fault.malformed()])
async def test_provider_faults_end_in_fallback(tmp_path: Path, server: FakeOpenAIServer, fault: Fault):
    server.enqueue(Reply(content="plan"), fault, fault)  # the client retries once
    async with Keel.open(_settings(tmp_path, server)) as keel:
        out = await keel.run("hi", user_id="alice")
        ex = await keel.records.get_execution(out.execution_id)
    assert out.path == ["recall", "plan", "decide", "fallback", "finalize"]
    assert (out.status, out.terminated_reason) == ("terminated", "llm_unavailable")
    assert "model is unavailable" in out.answer and ex.error


async def test_model_timeout_ends_in_fallback(tmp_path: Path, server: FakeOpenAIServer):
    server.enqueue(Reply(content="plan"), Fault.slow(5.0), Fault.slow(5.0))
    async with Keel.open(_settings(tmp_path, server, model_timeout_s=0.3)) as keel:
        out = await keel.run("hi", user_id="alice")
    assert out.terminated_reason == "llm_unavailable"


async def test_unknown_model_price_is_refused(tmp_path: Path, server: FakeOpenAIServer):
    settings = Settings(
        home=tmp_path, model_provider="openai", openai_base_url=server.base_url, model="mystery"
    )
    with pytest.raises(KeyError, match="no price for model 'mystery'"):
        async with Keel.open(settings):
            pass
