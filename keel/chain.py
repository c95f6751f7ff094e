"""The fallback chain's models, from `fallback_models` (keel.yaml or `KEEL_FALLBACK_MODELS`).

An entry is one of:
- `provider:model`: any LangChain chat model (`anthropic:claude-…`, `openai:gpt-4.1-mini`, `scripted:…`);
- `name`: a model on the primary's provider (and server);
- `name@base_url`: a model on another OpenAI-compatible server.
`provider:` is recognised only for a provider keel or `init_chat_model` knows, so an Ollama tag such as
`llama3:8b` stays a model name. Each model is named by its bare name (prices, breakers, metrics).
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from keel.models import chat_model, known_provider
from keel.settings import Settings

__all__ = ["fallback_models", "fallback_entry", "chain_providers"]


def fallback_entry(entry: str, settings: Settings) -> tuple[str, str, str | None]:
    """`(provider, name, base_url)` of one fallback entry; ValueError when it names no model."""
    name, at, base_url = entry.partition("@")
    if at:
        if not name or not base_url:
            raise ValueError(f"fallback model {entry!r}: expected name@base_url")
        return "openai", name, base_url
    provider, sep, rest = entry.partition(":")
    if sep and rest and known_provider(provider):
        return provider, rest, None
    if not entry:
        raise ValueError("a fallback model entry is empty")
    return settings.model_provider, entry, None


def chain_providers(settings: Settings) -> dict[str, str]:
    """The provider of each model of the chain by its name (the spans' `gen_ai.provider.name`)."""
    providers = {settings.model: settings.model_provider}
    for entry in settings.fallback_models:
        provider, name, _ = fallback_entry(entry, settings)
        providers.setdefault(name, provider)
    return providers


def fallback_models(settings: Settings) -> list[tuple[str, BaseChatModel]]:
    """`(name, model)` per fallback entry, in order (ModelSetupError when one cannot be built)."""
    chain = []
    for entry in settings.fallback_models:
        provider, name, base_url = fallback_entry(entry, settings)
        chain.append((name, chat_model(provider, name, settings, base_url=base_url)))
    return chain
