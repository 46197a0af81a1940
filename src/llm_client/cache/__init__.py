"""Response caching: what a cache backend is, how a request becomes a key, and the built-ins.

The cache *step* of the chain lives in :mod:`llm_client.middleware.cache`; this package holds
everything it and the backends stand on, one concern per module:

* :mod:`~llm_client.cache.base`: the :class:`CacheBackend` protocol, the optional
  :class:`DecodingCacheBackend` and :class:`SemanticCacheBackend` ones, and the stored
  :class:`CacheEntry`.
* :mod:`~llm_client.cache.keys`: key derivation (:func:`cache_key`, :func:`cache_identifier`,
  :func:`request_hash`, :func:`cache_scope`, :func:`prompt_text`). A key covers the
  operation, the model and every request parameter that can change the answer; credentials,
  transport options and bookkeeping fields the model never sees are left out
  (:data:`EXCLUDED_PARAMS`).
* :mod:`~llm_client.cache.secrets`: what an entry keeps (:func:`stored_params`: never
  credentials or transport options) and :func:`redact_text` for log lines.
* :mod:`~llm_client.cache.checks`: :func:`check_result_value`, the shape every entry read from
  a backend must have.
* :mod:`~llm_client.cache.memory`, :mod:`~llm_client.cache.fs`, :mod:`~llm_client.cache.sqlite`:
  the built-in backends :class:`MemoryCache` (``"memory"``), :class:`FileSystemCache`
  (``"fs"``) and :class:`SQLiteCache` (``"sqlite"``).
* :mod:`~llm_client.cache.registration`: their factories, registered through the same
  ``register_cache_backends`` hook a third-party plugin implements.

Every public name is importable from ``llm_client.cache`` itself.
"""

from __future__ import annotations

from ..known_secrets import REDACTED
from .base import CacheBackend, CacheEntry, DecodingCacheBackend, SemanticCacheBackend
from .checks import InvalidEntryError, check_result_value
from .fs import FileSystemCache
from .keys import (
    BOOKKEEPING_PARAMS,
    EXCLUDED_PARAMS,
    KEY_VERSION,
    cache_identifier,
    cache_key,
    cache_scope,
    canonical_json,
    namespaced_key,
    prompt_text,
    request_hash,
)
from .memory import MemoryCache
from .registration import fs_backend, memory_backend, register_cache_backends, sqlite_backend
from .secrets import TRANSPORT_PARAMS, is_secret_name, redact_text, stored_params
from .sqlite import SQLiteCache

__all__ = [
    "CacheBackend",
    "CacheEntry",
    "DecodingCacheBackend",
    "SemanticCacheBackend",
    "InvalidEntryError",
    "check_result_value",
    # key derivation
    "BOOKKEEPING_PARAMS",
    "EXCLUDED_PARAMS",
    "KEY_VERSION",
    "TRANSPORT_PARAMS",
    "cache_identifier",
    "cache_key",
    "cache_scope",
    "canonical_json",
    "namespaced_key",
    "prompt_text",
    "request_hash",
    # secrets
    "REDACTED",
    "is_secret_name",
    "redact_text",
    "stored_params",
    # backends
    "FileSystemCache",
    "MemoryCache",
    "SQLiteCache",
    "fs_backend",
    "memory_backend",
    "sqlite_backend",
    # the built-ins' plugin hook (the package is registered as the built-in plugin)
    "register_cache_backends",
]
