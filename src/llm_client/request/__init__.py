"""Building a :class:`~llm_client.pipeline.Call` from the public arguments of one call.

Everything a caller hands to ``get_response``, ``invoke`` or ``stream`` is checked here, before
the call enters the chain: malformed input raises
:class:`~llm_client.exceptions.InvalidRequestError` at once, naming the parameter and what it
accepts, and nothing is sent. The differences between the APIs live here too: ``max_tokens``
becomes ``max_completion_tokens`` (Chat) or ``max_output_tokens`` (Responses), Chat-style tool
definitions take the Responses API's flat form, and a parameter of the other API is refused.

The rules are OpenAI's, from two sources that agree:

* the OpenAPI description of the API (github.com/openai/openai-openapi, ``openapi.yaml``:
  ``CreateChatCompletionRequest``, ``ChatCompletionRequestMessage`` and its content parts,
  ``ChatCompletionTool``, ``CreateResponse``, ``InputItem``, ``FunctionTool``,
  ``CreateEmbeddingRequest``), which also states the numeric ranges quoted below;
* openai-python's request types (``openai/types/chat/completion_create_params.py``, the
  ``chat_completion_*_param.py`` message, part and tool types,
  ``openai/types/responses/response_create_params.py`` and ``response_input_item_param.py``).

Values that are free-form by design (a JSON schema, metadata, built-in Responses tools and
items, parameters this module does not know) pass through unchanged, so new API features keep
working, but they must still be JSON: string keys, finite numbers. The checks are plain code
rather than pydantic models of the SDK's TypedDicts: those declare lists as ``Iterable``, which
pydantic validates lazily (after the call is built), and their union errors do not name the
field at fault.

The package: ``build`` (:func:`build_call`), ``options`` (:class:`CallOptions`), ``messages``
(Chat), ``responses`` (Responses input), ``embeddings``, ``parts`` (content parts), ``tools``,
``params`` (every other parameter) and ``base`` (the checks they share).
"""

from __future__ import annotations

from .base import APIS, Api
from .build import FORBIDDEN_PARAMS, build_call
from .options import CALL_OPTIONS, CallOptions, check_call_options

__all__ = [
    "APIS",
    "CALL_OPTIONS",
    "FORBIDDEN_PARAMS",
    "Api",
    "CallOptions",
    "build_call",
    "check_call_options",
]
