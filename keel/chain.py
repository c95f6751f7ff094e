"""The fallback chain's models: `KEEL_FALLBACK_MODELS` entries built like the primary model."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from keel.models import make_chat_model
from keel.settings import Settings

__all__ = ["fallback_models"]


def fallback_models(settings: Settings) -> list[tuple[str, BaseChatModel]]:
    """`(name, model)` per fallback entry: `name` on the primary's server, or `name@base_url`."""
    chain = []
    for entry in settings.fallback_models:
        name, _, base_url = entry.partition("@")
        if not name:
            raise ValueError(f"KEEL_FALLBACK_MODELS entry {entry!r} has no model name")
        update: dict[str, object] = {"model": name}
        if base_url:
            if settings.model_provider != "openai":
                update["model_provider"] = "openai"
            update["openai_base_url"] = base_url
        chain.append((name, make_chat_model(settings.model_copy(update=update))))
    return chain
