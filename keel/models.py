"""Chat models: any OpenAI-compatible server through ChatOpenAI, or the offline scripted model."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from keel.scripted_model import ScriptedChatModel
from keel.settings import Settings

__all__ = ["make_chat_model"]


def make_chat_model(settings: Settings) -> BaseChatModel:
    """The primary model named by the settings."""
    if settings.model_provider == "scripted":
        return ScriptedChatModel(model_name=settings.model, max_tokens=settings.max_output_tokens)
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=settings.model,
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key,
        timeout=settings.model_timeout_s,
        max_retries=1,
        max_tokens=settings.max_output_tokens,
        stream_usage=True,
    )
