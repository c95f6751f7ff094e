"""Test utilities that ship with keel: a scripted fake chat model and a fake OpenAI-compatible server."""

from keel.testing.fake_model import FakeChatModel, Slow, tool_call
from keel.testing.openai_server import FakeOpenAIServer, Fault, Reply

__all__ = ["FakeChatModel", "Slow", "tool_call", "FakeOpenAIServer", "Reply", "Fault"]
