"""Run a JSONL file of requests through the client's pipeline: ``llm-client batch``.

Every line is one ordinary call through the chain (cost -> timeout -> cache -> tokens -> retry
-> limit -> transport), so caching, rate limits, retries and cost apply with no special case.

**Input.** One request per line, in OpenAI's Batch API input format, accepted as is::

    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}

``url`` is ``/v1/chat/completions``, ``/v1/responses`` or ``/v1/embeddings``. The short form
``{"custom_id": "r1", "messages": [...]}`` (Chat Completions) or ``{"custom_id": "r1",
"input": ...}`` (Responses API, or embeddings for an embeddings model) takes the model from
``model=`` (``--model``); its other keys are body parameters. A body's own ``model`` wins.

**Output.** One line per input line, in OpenAI's Batch output format (``BatchRequestOutput`` of
openai-openapi: ``id``, ``custom_id``, ``response`` with ``status_code``, ``request_id`` and
``body``, and ``error`` for failures that have no HTTP status), plus our normalized ``usage``,
``cost`` (USD) and ``cached``. ``response.body`` is rebuilt from the normalized result in the
endpoint's response shape (first choice; logprobs are not kept), the same for a cache hit and
a fresh answer. Lines are written in completion order.

**Resumable.** The output is append-only and keyed by ``custom_id``: each line is written with
one ``write()`` to a file opened ``O_APPEND`` as soon as its answer arrives, so a process that
is killed loses nothing it has received. A rerun reads the output, skips every ``custom_id``
already there and sends nothing twice; a partial last line (a kill in the middle of a write,
or a power loss) is cut off and its request runs again. ``fsync`` is ``"interval"`` by default
(at most once a second, and at the end): a process crash loses nothing, an operating-system
crash at most the last second of lines, which then run again. ``"always"`` syncs every line,
``"never"`` leaves it to the OS. A lock on the output file stops two runs writing it at once.

**Bad input never aborts.** A line that is not JSON, has no ``custom_id``, names an unknown
URL or model, repeats an earlier ``custom_id``, or whose body the client's request checks
(:mod:`llm_client.request`) refuse, is reported with its line number and reason in the errors
file (``<output>.errors.jsonl`` unless named), rewritten on every run; every good line runs.

The package's modules: :mod:`.input` (parsing lines), :mod:`.output` (the output and errors
files, resume state), :mod:`.lines` (OpenAI's output line shapes), :mod:`.runner`
(:func:`run_file`), :mod:`.estimate` (the dry run), :mod:`.summary` (:class:`BatchSummary`,
progress), :mod:`.api` (the same file through OpenAI's Batch API, with its private parts
``_api_parts``, ``_api_state`` and ``_api_collect``; also importable under the compatibility
alias ``llm_client.batch_api``) and :mod:`.cli` (``llm-client batch``).
"""

from .estimate import DEFAULT_ASSUMED_OUTPUT_TOKENS as DEFAULT_ASSUMED_OUTPUT_TOKENS
from .estimate import DryRunEstimate, estimate_file
from .input import URLS, BadLine, Request, iter_requests, parse_line
from .lines import failure_line as failure_line
from .lines import response_body as response_body
from .lines import success_line as success_line
from .output import FsyncPolicy, errors_path_for, read_output
from .output import is_failure as is_failure
from .runner import run_file
from .summary import BatchSummary

__all__ = [
    "URLS",
    "BadLine",
    "BatchSummary",
    "DryRunEstimate",
    "FsyncPolicy",
    "Request",
    "errors_path_for",
    "estimate_file",
    "iter_requests",
    "parse_line",
    "read_output",
    "run_file",
]
