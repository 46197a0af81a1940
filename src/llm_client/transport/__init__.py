"""The terminal of every chain and the only package that imports ``openai``.

It builds ``AsyncOpenAI(max_retries=0)`` (our :class:`~llm_client.middleware.retry.Retry` is
the one retry layer), on the SDK's aiohttp HTTP client by default, passes what is left of the
call's deadline as the per-request timeout, and turns every SDK failure into an
:class:`~llm_client.exceptions.LLMClientError` with an HTTP-like ``status``.

Non-streamed bodies are read as JSON and normalized here, without building the SDK's pydantic
models (faster, and a malformed body becomes :class:`ResponseDecodeError` instead of escaping as
a bare ``json.JSONDecodeError``). Streams are checked for completeness: a Chat stream must reach
a ``finish_reason`` and a Responses stream its ``response.completed`` (or ``incomplete``) event,
otherwise the stream ends in an ``error`` event — a truncated answer is never a success.

The package's modules: :mod:`.core` (the :class:`Transport`: the SDK client's lifecycle and the
dispatch of one call), :mod:`.sdk` (per-request timeouts, closing streams and SDK clients),
:mod:`.errors` (:func:`translate`), :mod:`.chat` and :mod:`.responses` (reading each API's
answers and streams), :mod:`.embeddings` (:func:`decode_embedding`), :mod:`.results` (what the
readers share) and :mod:`.batches` (the Batch API's files and batches).
"""

from .core import Transport
from .embeddings import decode_embedding
from .errors import translate

__all__ = ["Transport", "decode_embedding", "translate"]
