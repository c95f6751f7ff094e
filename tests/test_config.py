"""keel.yaml: found by --config, KEEL_CONFIG or ./keel.yaml; every mistake is FILE:LINE at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.config import ConfigError, find_config, load_config
from keel.settings import Settings, shipped_file

FULL = """\
agent: {name: support-desk, version: "2026-12-01", prompt: prompts/system.md, plan: false}
model: openai:gpt-4o-mini
fallback_models: [openai:gpt-4.1-mini]
tools:
  - import: support_desk.tools:lookup_order
    effect: read
    resource: "order:{order_id}"
    timeout_s: 10
    price_usd: 0.01
  - builtin: read_file
policy: policy.yaml
prices: prices.yaml
"""


def write(tmp_path: Path, text: str, name: str = "keel.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "system.md").write_text("You help.\n", encoding="utf-8")
    (tmp_path / "policy.yaml").write_text(shipped_file("default.yaml").read_text(), encoding="utf-8")
    (tmp_path / "prices.yaml").write_text(shipped_file("prices.yaml").read_text(), encoding="utf-8")
    return tmp_path


def test_full_config_reads_with_paths_relative_to_the_file(project: Path):
    config = load_config(write(project, FULL))
    assert config.agent.name == "support-desk" and config.agent.plan is False
    assert config.agent.prompt == project / "prompts" / "system.md"
    assert config.policy == project / "policy.yaml"
    assert config.model == "openai:gpt-4o-mini" and config.fallback_models == ("openai:gpt-4.1-mini",)
    first, second = config.tools
    assert (first.source, first.target, first.effect, first.resource) == (
        "python",
        "support_desk.tools:lookup_order",
        "read",
        "order:{order_id}",
    )
    assert (first.timeout_s, first.price_usd, first.line) == (10, 0.01, 5)
    assert (second.source, second.target, second.effect, second.line) == ("builtin", "read_file", None, 10)
    settings = config.apply(Settings(home=project))
    assert (settings.model_provider, settings.model, settings.fallback_models) == (
        "openai",
        "gpt-4o-mini",
        ["openai:gpt-4.1-mini"],  # the fallback keeps its provider (any provider may be a fallback)
    )
    assert (settings.plan_enabled, settings.version, settings.policy_file) == (
        False,
        "2026-12-01",
        project / "policy.yaml",
    )


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("agent: {name: x}\ntool:\n  - builtin: read_file\n", 2, "unknown key 'tool'"),
        ("agent:\n  name: x\n  promt: p.md\n", 3, "agent: unknown key 'promt'"),
        ("tools:\n  - builtin: read_file\n  - import: m:f\n    efect: read\n", 4, "unknown key 'efect'"),
        ("tools:\n  - import: m:f\n    resource: 'x:{a}'\n", 2, "tool entry has no 'effect'"),
        ("tools:\n  - import: m:f\n    effect: write\n", 3, "unknown effect 'write'"),
        ("tools:\n  - import: m.f\n    effect: read\n", 2, "expected module:attr"),
        ("tools:\n  - import: m:f\n    builtin: read_file\n    effect: read\n", 2, "exactly one of"),
        ("tools:\n  - import: m:f\n    effect: read\n    timeout_s: -1\n", 4, "greater than 0"),
        ("model: gpt-4o\n", 1, "expected provider:model"),
        ("model: {id: openai:gpt-x, input: 1}\n", 1, "needs both input and output prices"),
        ("model: {id: openai:gpt-x, input: 1, output: -2}\n", 1, "non-negative number"),
        ("model: {input: 1, output: 2}\n", 1, "needs an 'id'"),
        ("model: {id: openai:gpt-x, inptu: 1}\n", 1, "unknown key 'inptu'"),
        ("model: openai:gpt-x\nfallback_models: [azure_openai:gpt-x]\n", 2, "same name 'gpt-x'"),
        ("agent: {prompt: empty.md}\n", 1, "is empty"),
        ("policy: nowhere.yaml\n", 1, "policy: no file at"),
        ("tools:\n  - mcp: {name: files}\n    effect: external\n", 2, "one of 'command' (stdio) or 'url'"),
        ("agent: [1\n", 2, "not valid YAML"),
        ("", 1, "empty config"),
    ],
)
def test_a_mistake_fails_at_its_line(tmp_path: Path, text: str, line: int, reason: str):
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.source, info.value.line) == (str(path), line), str(info.value)
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_mcp_entries_are_parsed(tmp_path: Path):
    text = "tools:\n  - mcp: {name: files, command: python, args: [-m, srv]}\n    effect: external\n"
    (entry,) = load_config(write(tmp_path, text)).tools
    assert (entry.source, entry.target, entry.mcp.command, entry.mcp.args) == (
        "mcp",
        "files",
        "python",
        ("-m", "srv"),
    )


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KEEL_CONFIG", raising=False)
    assert find_config(cwd=tmp_path) is None  # no config: today's defaults
    local = write(tmp_path, "agent: {name: local}\n")
    assert find_config(cwd=tmp_path) == local
    named = write(tmp_path, "agent: {name: env}\n", "other.yaml")
    monkeypatch.setenv("KEEL_CONFIG", str(named))
    assert find_config(cwd=tmp_path) == named
    explicit = write(tmp_path, "agent: {name: flag}\n", "flag.yaml")
    assert find_config(explicit, cwd=tmp_path) == explicit
    with pytest.raises(ConfigError, match="named by --config"):
        find_config(tmp_path / "missing.yaml", cwd=tmp_path)
    monkeypatch.setenv("KEEL_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match="named by KEEL_CONFIG"):
        find_config(cwd=tmp_path)


def test_no_tools_key_means_the_builtins(tmp_path: Path):
    from keel.tools.from_config import registry_from_config
    from keel.tools.registry import default_registry

    config = load_config(write(tmp_path, "agent: {name: x}\n"))
    assert config.tools is None
    assert registry_from_config(config).names() == default_registry().names()
    assert registry_from_config(None).names() == default_registry().names()
