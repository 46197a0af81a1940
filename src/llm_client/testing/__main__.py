"""Run the fake OpenAI server standalone.

    python -m llm_client.testing [--host 127.0.0.1] [--port 8000] [--latency S] [--api-key KEY]

The first line printed on stdout is the base URL (``http://127.0.0.1:<port>/v1``); export it as
``OPENAI_BASE_URL``. The server runs until interrupted (Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from llm_client.testing.quotas import Quota
from llm_client.testing.server import FakeOpenAI


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m llm_client.testing",
        description="Serve a fake OpenAI API (chat, responses, embeddings, models).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds to wait before every answer"
    )
    parser.add_argument("--api-key", default=None, help="accept only this bearer token")
    parser.add_argument(
        "--no-rate-limit-headers",
        action="store_true",
        help="do not send x-ratelimit-* headers",
    )
    parser.add_argument(
        "--log-requests",
        action="store_true",
        help="keep a request log in memory (off by default: it grows without bound)",
    )
    for dimension in ("rpm", "tpm", "usage-tpm"):
        parser.add_argument(
            f"--quota-{dimension}",
            type=float,
            default=None,
            help=f"enforce this {dimension.upper()} quota with OpenAI's accounting (see Quota)",
        )
    return parser.parse_args(argv)


def _quota(args: argparse.Namespace) -> Quota | None:
    if args.quota_rpm is None and args.quota_tpm is None and args.quota_usage_tpm is None:
        return None
    return Quota(
        requests_per_minute=args.quota_rpm,
        tokens_per_minute=args.quota_tpm,
        usage_tokens_per_minute=args.quota_usage_tpm,
    )


async def _serve(args: argparse.Namespace) -> None:
    server = FakeOpenAI(
        host=args.host,
        port=args.port,
        latency=args.latency,
        api_key=args.api_key,
        rate_limit_headers=not args.no_rate_limit_headers,
        log_requests=args.log_requests,
        quota=_quota(args),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. on Windows
            loop.add_signal_handler(sig, stop.set)
    async with server:
        print(server.base_url, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m llm_client.testing``."""
    args = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
