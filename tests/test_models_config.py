"""Models, prices and the system prompt from keel.yaml: any LangChain provider through init_chat_model, with
the provider's own environment variables; prices next to the model; the prompt file as system message."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from keel.app.service import Keel
from keel.chain import fallback_entry
from keel.config import ConfigError, load_config
from keel.costs import UnknownPrice
from keel.prompts import PromptFileError
from keel.settings import Settings, shipped_file
from keel.testing.openai_server import FakeOpenAIServer, Fault, Reply

KEEL_MODEL_VARS = (
    "KEEL_MODEL_PROVIDER",
    "KEEL_MODEL",
    "KEEL_OPENAI_BASE_URL",
    "KEEL_OPENAI_API_KEY",
    "KEEL_FALLBACK_MODELS",
    "KEEL_PROMPT_FILE",
    "KEEL_CONFIG",
    "OPENAI_API_BASE",
)


@pytest.fixture
def openai_env(monkeypatch: pytest.MonkeyPatch, server: FakeOpenAIServer) -> FakeOpenAIServer:
    """Only the provider's own variables: OPENAI_BASE_URL and OPENAI_API_KEY; no KEEL_* model variable."""
    for name in KEEL_MODEL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-from-env")
    return server


def project(tmp_path: Path, text: str, **files: str) -> Path:
    for name, body in files.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    path = tmp_path / "keel.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


async def test_openai_through_init_chat_model_with_only_the_providers_env(tmp_path: Path, openai_env):
    openai_env.enqueue(Reply(content="1. answer", usage=(100, 10)), Reply(content="hello", usage=(200, 20)))
    config = load_config(project(tmp_path, "model: openai:fake-model\n"))
    heard: list[str] = []
    async with Keel.open(Settings(home=tmp_path / "home"), config=config) as keel:
        out = await keel.run("hi", user_id=user(), on_token=lambda node, token: heard.append(token))
        ex = await keel.records.get_execution(out.execution_id)
    assert (out.status, out.answer) == ("succeeded", "hello")
    assert out.path == ["recall", "plan", "decide", "finalize"]
    assert [r["model"] for r in openai_env.requests] == ["fake-model", "fake-model"]
    assert all(r.get("stream") for r in openai_env.requests) and heard
    # usage reached keel while streaming from OPENAI_BASE_URL (needs stream_usage), priced by prices.yaml
    assert (ex.input_tokens, ex.output_tokens) == (300, 30)
    assert float(ex.cost) == pytest.approx((300 * 1.0 + 30 * 2.0) / 1e6)


async def test_a_fallback_on_another_provider_answers_when_the_primary_fails(tmp_path: Path, openai_env):
    openai_env.enqueue(Fault.http(500, retry_after=0.01), Fault.http(500, retry_after=0.01))
    text = "agent: {plan: false}\nmodel: openai:fake-model\nfallback_models: [scripted:keel-scripted]\n"
    config = load_config(project(tmp_path, text))
    exporter = InMemorySpanExporter()
    async with Keel.open(Settings(home=tmp_path / "home"), config=config) as keel:
        keel.backends.telemetry.tracing.add_exporter(exporter)
        assert [name for name, _ in keel.backends.models] == ["fake-model", "keel-scripted"]
        uid = user()
        out = await keel.run("hi", user_id=uid)
        [entry, *_] = await keel.backends.ledger.history(uid)
    chats = sorted(
        (s for s in exporter.get_finished_spans() if s.name.startswith("chat ")), key=lambda s: s.start_time
    )
    assert [(s.name, s.attributes["gen_ai.provider.name"]) for s in chats] == [
        ("chat fake-model", "openai"),
        ("chat keel-scripted", "scripted"),
    ]
    assert out.path == ["recall", "decide", "fallback", "decide", "finalize"]
    assert (out.status, out.terminated_reason) == ("succeeded", None)
    assert (entry.name, entry.status) == ("keel-scripted", "settled")
    assert len(openai_env.requests) == 2, "the primary was tried (and retried once), then the fallback"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("anthropic:claude-x", ("anthropic", "claude-x", None)),
        ("ollama:llama3:8b", ("ollama", "llama3:8b", None)),
        ("llama3:8b", ("openai", "llama3:8b", None)),  # an Ollama tag, not a provider
        ("gpt-4o-mini", ("openai", "gpt-4o-mini", None)),
        ("big@http://127.0.0.1:9/v1", ("openai", "big", "http://127.0.0.1:9/v1")),
    ],
)
def test_fallback_entries_in_the_env_form(entry: str, expected: tuple):
    settings = Settings(model_provider="openai", model="fake-model", fallback_models=entry)
    assert fallback_entry(settings.fallback_models[0], settings) == expected


@pytest.mark.skipif(
    importlib.util.find_spec("langchain_anthropic") is not None, reason="langchain-anthropic is installed"
)
@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("model: anthropic:claude-x\n", 1),
        (
            "model: openai:fake-model\n"
            "fallback_models:\n  - scripted:keel-scripted\n  - anthropic:claude-x\n",
            4,
        ),
    ],
)
async def test_an_uninstalled_provider_is_refused_at_start_at_its_line(
    tmp_path: Path, openai_env, text: str, line: int
):
    path = project(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        async with Keel.open(Settings(home=tmp_path / "home"), config=load_config(path)):
            pass
    assert (info.value.source, info.value.line) == (str(path), line)
    assert "pip install langchain-anthropic" in str(info.value)
    assert not openai_env.requests


async def test_openai_without_any_key_is_refused_at_start(tmp_path: Path, openai_env, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    path = project(tmp_path, "agent: {name: x}\nmodel: openai:fake-model\n")
    with pytest.raises(ConfigError) as info:
        async with Keel.open(Settings(home=tmp_path / "home"), config=load_config(path)):
            pass
    assert info.value.line == 2 and "OPENAI_API_KEY" in str(info.value)


async def test_prices_next_to_the_model_price_an_otherwise_unpriced_model(tmp_path: Path, openai_env):
    openai_env.enqueue(Reply(content="done", usage=(1000, 100)))
    text = 'agent: {plan: false}\nmodel: {id: "openai:house-model", input: 3.0, output: 6.0}\n'
    config = load_config(project(tmp_path, text))
    async with Keel.open(Settings(home=tmp_path / "home"), config=config) as keel:
        uid = user()
        out = await keel.run("hi", user_id=uid)
        ex = await keel.records.get_execution(out.execution_id)
        spent = await keel.backends.ledger.spent_by(out.execution_id)
    assert (out.status, out.answer) == ("succeeded", "done")
    assert [r["model"] for r in openai_env.requests] == ["house-model"]
    charged = (1000 * 3.0 + 100 * 6.0) / 1e6
    assert float(ex.cost) == pytest.approx(charged)
    assert float(spent) == pytest.approx(charged)


async def test_prices_next_to_the_model_win_over_the_prices_file(tmp_path: Path, openai_env):
    openai_env.enqueue(Reply(content="done", usage=(1000, 100)))
    text = "agent: {plan: false}\nmodel: {id: openai:fake-model, input: 10, output: 20}\n"
    async with Keel.open(
        Settings(home=tmp_path / "home"), config=load_config(project(tmp_path, text))
    ) as keel:
        out = await keel.run("hi", user_id=user())
        ex = await keel.records.get_execution(out.execution_id)
    assert float(ex.cost) == pytest.approx((1000 * 10 + 100 * 20) / 1e6)


@pytest.mark.parametrize(
    ("text", "line", "model"),
    [
        ("model: openai:house-model\n", 1, "house-model"),
        ("model: openai:fake-model\nfallback_models: [openai:other-house]\n", 2, "other-house"),
    ],
)
async def test_an_unpriced_model_is_refused_at_start_naming_both_places(
    tmp_path: Path, openai_env, text: str, line: int, model: str
):
    path = project(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        async with Keel.open(Settings(home=tmp_path / "home"), config=load_config(path)):
            pass
    assert (info.value.source, info.value.line) == (str(path), line)
    message = str(info.value)
    assert f"no price for model {model!r}" in message
    assert str(shipped_file("prices.yaml")) in message and "keel.yaml" in message
    assert not openai_env.requests


def test_an_unpriced_model_from_the_environment_names_both_places(tmp_path: Path, openai_env):
    from keel.app.backends import Backends

    with pytest.raises(UnknownPrice) as info:
        Backends.from_settings(Settings(home=tmp_path, model_provider="openai", model="mystery"))
    assert "prices.yaml" in str(info.value) and "keel.yaml" in str(info.value)


PROMPT = """You are Desk, the help desk of ACME, talking to {user} (role {role}, tenant {tenant}).
Answer as JSON like {json} or {"a": 1}; {{x}} stays doubled and a lone { stays too.
"""


async def test_the_prompt_file_is_the_system_message_with_only_documented_placeholders(
    tmp_path: Path, openai_env
):
    openai_env.enqueue(Reply(content="1. look"), Reply(content="ok"))
    text = "agent: {name: desk, prompt: system.md}\nmodel: openai:fake-model\n"
    config = load_config(project(tmp_path, text, **{"system.md": PROMPT}))
    uid = user()
    async with Keel.open(Settings(home=tmp_path / "home"), config=config) as keel:
        out = await keel.run("hi", user_id=uid)
    assert out.status == "succeeded"
    plan_req, decide_req = openai_env.requests
    expected = (
        f"You are Desk, the help desk of ACME, talking to {uid} (role user, tenant default).\n"
        'Answer as JSON like {json} or {"a": 1}; {{x}} stays doubled and a lone { stays too.'
    )
    for request in (plan_req, decide_req):
        system = request["messages"][0]
        assert system["role"] == "system" and system["content"].startswith(expected)
        assert "You are keel" not in system["content"]
    # keel still appends the plan to the project's instructions
    assert decide_req["messages"][0]["content"] == expected + "\n\nYour plan:\n1. look"


async def test_without_a_prompt_keel_uses_its_built_in_instructions(tmp_path: Path, openai_env):
    openai_env.enqueue(Reply(content="ok"))
    config = load_config(project(tmp_path, "agent: {plan: false}\nmodel: openai:fake-model\n"))
    uid = user()
    async with Keel.open(Settings(home=tmp_path / "home"), config=config) as keel:
        await keel.run("hi", user_id=uid)
    system = openai_env.requests[0]["messages"][0]["content"]
    assert system.startswith("You are keel") and f"home/{uid}/" in system


async def test_keel_prompt_file_without_a_config(tmp_path: Path, openai_env):
    openai_env.enqueue(Reply(content="ok"))
    prompt = tmp_path / "p.md"
    prompt.write_text("Be brief with {user}.\n", encoding="utf-8")
    settings = Settings(
        home=tmp_path / "home",
        model_provider="OpenAI",
        model="fake-model",
        plan_enabled=False,
        prompt_file=prompt,
    )
    uid = user()
    async with Keel.open(settings) as keel:
        await keel.run("hi", user_id=uid)
    assert openai_env.requests[0]["messages"][0]["content"] == f"Be brief with {uid}."
    prompt.write_text(" \n", encoding="utf-8")
    with pytest.raises(PromptFileError, match="is empty"):
        async with Keel.open(settings):
            pass
