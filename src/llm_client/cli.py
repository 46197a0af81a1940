"""The ``llm-client`` command: ``demo``, ``models [--check]`` and ``cache``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from .batch.cli import add_batch_parser, run_batch_command
from .cache_cli import add_cache_parser, run_cache_command
from .config import resolve

if TYPE_CHECKING:
    from .models import ModelProfile

__all__ = ["main", "model_differences"]

DEMO_CHAT = [
    "Summarize the plot of Hamlet in one sentence.",
    "Give me three names for a grey cat.",
    "What is the capital of Australia?",
    "Explain a token bucket rate limiter briefly.",
]
DEMO_RESPONSES = [
    "Write a haiku about caching.",
    "List two benefits of retries with jitter.",
]
DEMO_EMBED = [
    "the quick brown fox jumps over the lazy dog",
    "a fast brown fox leaps over a sleepy dog",
    "an unrelated sentence about interest rates",
]


def _table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "round",
        "requests",
        "cache hits",
        "tokens in",
        "tokens out",
        "cost USD",
        "saved USD",
        "wall s",
    ]
    lines = [headers]
    for r in rows:
        lines.append(
            [
                str(r["round"]),
                str(r["requests"]),
                str(r["cache_hits"]),
                str(r["input_tokens"]),
                str(r["output_tokens"]),
                f"{r['cost_usd']:.6f}",
                f"{r['saved_usd']:.6f}",
                f"{r['wall']:.3f}",
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(headers))]
    out = []
    for n, row in enumerate(lines):
        out.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


async def _demo(args: argparse.Namespace) -> int:
    from .client import OpenAIClient
    from .models import GPT5Point4Nano, TextEmbedding3Small

    async with AsyncExitStack() as stack:
        client_options: dict[str, Any] = {}
        if args.live:
            if resolve(None, "OPENAI_API_KEY") is None:
                print(
                    "--live needs OPENAI_API_KEY in the environment or a .env file", file=sys.stderr
                )
                return 2
            where = "OpenAI (live)"
        else:
            from .testing.server import FakeOpenAI

            server = await stack.enter_async_context(FakeOpenAI())
            client_options = {"base_url": server.base_url, "api_key": "sk-demo-not-a-real-key"}
            where = f"the bundled fake OpenAI server at {server.base_url}"
        cache_dir = args.cache_dir or stack.enter_context(tempfile.TemporaryDirectory())
        common = {"cache_backend": args.cache, "cache_dir": cache_dir, **client_options}
        chat = OpenAIClient(GPT5Point4Nano, **common)
        responses = OpenAIClient(GPT5Point4Nano, api="responses", **common)
        embed = OpenAIClient(TextEmbedding3Small, **common)
        clients = (chat, responses, embed)
        for c in clients:
            stack.push_async_callback(c.close)
        print(f"llm-client demo: talking to {where}")
        print(f"cache: {args.cache} in {cache_dir}\n")
        rows = []
        for round_no in (1, 2):
            before = [c.stats()["totals"] for c in clients]
            start = time.perf_counter()
            coros: list[Any] = [
                chat.get_response(messages=[{"role": "user", "content": q}]) for q in DEMO_CHAT
            ]
            coros += [responses.get_response(input=q) for q in DEMO_RESPONSES]
            coros += [embed.get_response(input=t) for t in DEMO_EMBED]
            results = await chat.run_batch(coros)
            wall = time.perf_counter() - start
            failed = [r for r in results if r.get("status") != 200]
            for r in failed:
                print(f"  failed: {r['status']} {r['error']}", file=sys.stderr)
            after = [c.stats()["totals"] for c in clients]
            row: dict[str, Any] = {"round": round_no, "wall": wall}
            for key in (
                "requests",
                "cache_hits",
                "input_tokens",
                "output_tokens",
                "cost_usd",
                "saved_usd",
            ):
                row[key] = sum(a[key] - b[key] for a, b in zip(after, before, strict=True))
            rows.append(row)
        print(_table(rows))
        print(
            "\nRound 2 repeats round 1: every answer comes from the cache, so it spends"
            " nothing and reports what it saved."
        )
        return 1 if any(r["requests"] == 0 for r in rows) else 0


def _status(profile: ModelProfile) -> str:
    state = profile.status()
    if state == "active":
        return "active"
    days = profile.days_until_shutdown()
    then = f" -> {profile.replacement}" if profile.replacement else ""
    if state == "shut down":
        return f"shut down {profile.shutdown_date}{then}"
    return f"{state}: shuts down {profile.shutdown_date} (in {days} d){then}"


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _models() -> int:
    from .models import PRICES_SOURCE, ModelProfile

    profiles = ModelProfile.all()
    rows = [
        [
            "key",
            "input $/1M",
            "cached $/1M",
            "output $/1M",
            "context",
            "max input",
            "max output",
            "TPM",
            "RPM",
            "status",
        ]
    ]
    for p in profiles:
        c = p.usage_costs
        rows.append(
            [
                p.key,
                f"{c.input:g}",
                f"{c.cached_input:g}",
                f"{c.output:g}",
                f"{p.context_window:,}",
                f"{p.max_input:,}",
                f"{p.max_output:,}",
                f"{p.rate_limits.tkn_per_min:,}",
                f"{p.rate_limits.req_per_min:,}",
                _status(p),
            ]
        )
    _print_table(rows)
    long_context = [p for p in profiles if p.long_context is not None]
    if long_context:
        rule = long_context[0].long_context
        assert rule is not None
        print(
            f"\nLong-context pricing: a prompt over {rule.above_input_tokens:,} input tokens is"
            f" billed at {rule.input_multiplier:g}x input and {rule.output_multiplier:g}x output"
            f" for the whole request: {', '.join(p.key for p in long_context)}."
        )
    writes = [p for p in profiles if p.usage_costs.cache_write is not None]
    if writes:
        listed = ", ".join(f"{p.key} ${p.usage_costs.cache_write:g}" for p in writes)
        print(f"Cache writes (per 1M tokens; elsewhere billed as input): {listed}.")
    print(f"\n{PRICES_SOURCE}")
    return 0


def model_differences(
    listed: Iterable[Mapping[str, Any]], profiles: Iterable[ModelProfile] | None = None
) -> list[str]:
    """What an account's ``GET /v1/models`` listing says that the profiles do not.

    A profile whose model the API does not list is reported as missing; a listed model (or
    dated snapshot of a profiled model) whose ``shutdown_date`` differs from the profile's is
    reported with both dates. Models without a profile are ignored. ``profiles`` defaults to
    the bundled table.
    """
    from .models import _SNAPSHOT, builtin_profiles

    profiles = list(builtin_profiles() if profiles is None else profiles)
    by_name = {p.model_name: p for p in profiles}
    api: dict[str, Mapping[str, Any]] = {}
    for item in listed:
        model_id = item.get("id")
        if isinstance(model_id, str):
            api[model_id] = item
    out: list[str] = []
    for p in profiles:
        if p.model_name not in api:
            out.append(
                f"missing   {p.model_name}: not listed by the API (not available to this"
                " account, or shut down)"
            )
    for model_id, item in sorted(api.items()):
        profile = by_name.get(model_id) or by_name.get(_SNAPSHOT.sub("", model_id))
        if profile is None or "shutdown_date" not in item:
            continue
        theirs = item.get("shutdown_date") or None
        ours = profile.shutdown_date.isoformat() if profile.shutdown_date else None
        if theirs != ours:
            label = "" if model_id == profile.model_name else f" (profile {profile.key})"
            out.append(
                f"shutdown  {model_id}{label}: the API says {theirs or 'none'},"
                f" the profile says {ours or 'none'}"
            )
    return out


async def _check_models() -> int:
    from .exceptions import LLMClientError
    from .models import builtin_profiles
    from .transport import Transport

    try:
        transport = Transport()
    except Exception as exc:  # the SDK refuses to start without a key
        print(f"cannot ask the API: {exc}", file=sys.stderr)
        return 2
    try:
        listed = await transport.list_models()
    except LLMClientError as exc:
        print(f"GET /models failed: {exc}", file=sys.stderr)
        return 2
    finally:
        await transport.aclose()
    differences = model_differences(listed)
    print(
        f"Compared {len(builtin_profiles())} bundled profiles with the {len(listed)} models that"
        f" GET {transport.sdk.base_url}models lists."
    )
    for line in differences:
        print(line)
    if not differences:
        print("No differences.")
        return 0
    plural = "s" if len(differences) != 1 else ""
    print(f"{len(differences)} difference{plural}.")
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-client", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a small batch twice through the full pipeline")
    demo.add_argument("--live", action="store_true", help="talk to OpenAI (needs OPENAI_API_KEY)")
    demo.add_argument("--cache", default="sqlite", help="cache backend (default: sqlite)")
    demo.add_argument("--cache-dir", default=None, help="cache folder (default: a temp dir)")
    models = sub.add_parser(
        "models", help="list model profiles with prices, limits and shutdown status"
    )
    models.add_argument(
        "--check",
        action="store_true",
        help="compare the profiles with the account's GET /v1/models (uses OPENAI_API_KEY"
        " and OPENAI_BASE_URL); exit status 1 if they differ",
    )
    add_cache_parser(sub)
    add_batch_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return asyncio.run(_demo(args))
    if args.command == "models":
        return asyncio.run(_check_models()) if args.check else _models()
    if args.command == "cache":
        return asyncio.run(run_cache_command(args))
    if args.command == "batch":
        return run_batch_command(args)
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
