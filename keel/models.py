"""Chat models: any LangChain chat model by `provider:model` (LangChain's `init_chat_model`), or keel's
offline scripted model (`scripted:`).

Each provider reads its own environment variables (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`,
…), so no keel-only variable is needed to reach a provider. `KEEL_OPENAI_BASE_URL` and `KEEL_OPENAI_API_KEY`
stay as optional overrides of the `openai` provider (a local vLLM or Ollama server without a key).

The name keel uses for prices, metrics, breakers and the execution record is the bare model name (the part
after `provider:`), as `policies/prices.yaml` lists it.
"""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel

from keel.scripted_model import ScriptedChatModel
from keel.settings import Settings

__all__ = ["SCRIPTED", "ModelSetupError", "chat_model", "make_chat_model", "split_model_id", "known_provider"]

SCRIPTED = "scripted"
"""keel's offline scripted model (labelled as such in every output)."""

_OPENAI_CLIENTS = ("openai", "azure_openai")
"""Providers built on ChatOpenAI's client, which report streamed usage only when asked (`stream_usage`)."""

_LOCAL_KEY = "not-needed"
"""The API key sent to a KEEL_OPENAI_BASE_URL server when no key is set anywhere (local servers take any)."""


class ModelSetupError(ValueError):
    """A model keel cannot build at start (unknown provider, integration package not installed, no
    credentials): one line naming the model and what to do."""

    def __init__(self, model_id: str, reason: str) -> None:
        super().__init__(f"model {model_id!r}: {reason}")  # quoted: `:name:` would read as an emoji code
        self.model_id = model_id
        """`provider:model`, as keel.yaml writes it."""


def split_model_id(value: str) -> tuple[str, str]:
    """`provider:model` as `(provider, model)`; the model part may itself contain `:` (`ollama:llama3:8b`)."""
    provider, sep, name = value.partition(":")
    if not sep or not provider or not name:
        raise ValueError(f"model {value!r}: expected provider:model (e.g. openai:gpt-4o-mini)")
    return provider, name


def known_provider(provider: str) -> bool:
    """Whether `provider` names keel's scripted model or a provider `init_chat_model` knows.

    Used only to read the env form of KEEL_FALLBACK_MODELS, where `llama3:8b` is a model name (an Ollama
    tag) and `anthropic:claude-x` a provider and a model."""
    provider = provider.replace("-", "_").lower()
    if provider == SCRIPTED:
        return True
    from langchain.chat_models import base

    return provider in getattr(base, "_BUILTIN_PROVIDERS", ())


def make_chat_model(settings: Settings) -> BaseChatModel:
    """The primary model named by the settings (`model_provider`, `model`)."""
    return chat_model(settings.model_provider, settings.model, settings)


def chat_model(provider: str, name: str, settings: Settings, *, base_url: str | None = None) -> BaseChatModel:
    """One chat model with keel's call bounds (`max_tokens`, timeout, one retry); ModelSetupError when it
    cannot be built, which happens at start, never at the first call.

    `base_url`: an OpenAI-compatible server for this model only (a fallback's `name@base_url`)."""
    provider = provider.replace("-", "_").lower()  # as init_chat_model normalises it
    if provider == SCRIPTED:
        return ScriptedChatModel(model_name=name, max_tokens=settings.max_output_tokens)
    from langchain.chat_models import init_chat_model

    kwargs: dict[str, object] = {
        "timeout": settings.model_timeout_s,
        "max_retries": 1,
        "max_tokens": settings.max_output_tokens,
    }
    if provider in _OPENAI_CLIENTS:
        # Against a custom base URL, ChatOpenAI reports usage while streaming only when asked; keel prices
        # every call from that usage (docs: the architecture's known traps).
        kwargs["stream_usage"] = True
        base = base_url or settings.openai_base_url
        if base:
            kwargs["base_url"] = base
        if settings.openai_api_key is not None:
            kwargs["api_key"] = settings.openai_api_key
        elif base and not os.environ.get("OPENAI_API_KEY"):
            kwargs["api_key"] = _LOCAL_KEY
    try:
        return init_chat_model(name, model_provider=provider, **kwargs)
    except ImportError as exc:  # the provider's integration package: the message says what to pip install
        raise ModelSetupError(f"{provider}:{name}", _one_line(exc)) from None
    except Exception as exc:  # noqa: BLE001 - unknown provider, missing credentials, a bad parameter
        raise ModelSetupError(f"{provider}:{name}", f"cannot be built: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 800 else text[:797] + "..."
