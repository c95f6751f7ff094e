"""The Chroma client keel opens: a server over HTTP (`KEEL_CHROMA_URL`) or a directory under `home`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from keel.settings import Settings

__all__ = ["chroma_client_factory"]


def chroma_client_factory(settings: Settings) -> Callable[[], Any]:
    """A function opening the Chroma client the settings name (HTTP server, else a local directory).

    chromadb (half a second to import) is imported by that function, at the memory's first use, not here:
    building the backends of a command that never touches long-term memory does not pay for it."""
    if settings.chroma_url:
        parts = urlsplit(settings.chroma_url)
        ssl = parts.scheme == "https"
        host, port = parts.hostname or "127.0.0.1", parts.port or (443 if ssl else 8000)

        def http() -> Any:
            import chromadb

            return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_chroma_settings())

        return http
    path = (settings.home / "chroma").resolve()

    def persistent() -> Any:
        import chromadb

        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())

    return persistent


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False)
