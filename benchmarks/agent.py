"""An agent run next to the same conversation driven by hand with the raw SDK.

    python benchmarks/agent.py [--runs 60] [--rounds 5] [--turns 5] [--tools 3] [--api chat]

The fake OpenAI server runs in a child process (``llm_client.testing.subprocess_server``). A
tool script in the user message makes the model call ``--tools`` tools in parallel on each of
``--turns`` turns, then answer in text: ``turns + 1`` model calls per run.

- **agent**: ``AgentRunner(OpenAIClient(GPT5Point4Nano, cache_backend=None), [lookup]).run(...)``
  — every turn through the client's whole chain (cost, timeout, tokens, retry, limiter). The
  limiter is given budgets it never reaches (``--profile-limits`` keeps the profile's 200k
  TPM with a 1 s burst, where it deliberately paces back-to-back turns: that measures the
  limiter's policy, not the agent).
- **raw SDK**: the loop written by hand on ``AsyncOpenAI`` (same aiohttp HTTP client, no
  retries): ``create`` (the SDK's typed models), ``json.loads`` the arguments, run the tools
  with ``asyncio.gather``, append the assistant message and the tool outputs, repeat.

- **client loop**: the same loop by hand on ``OpenAIClient.invoke`` (the difference to the
  agent is what the runner itself adds: validation, records, transcript, events).

All run the same async tool. Runs are timed in interleaved rounds (agent, raw, agent, ...);
the median of each round is kept and the best round of each side is shown, so the machine's
noise hits both alike. The overhead per turn is ``(agent - raw) / (turns + 1)``; the target is
<= 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

_TIKTOKEN = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken-cache"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _TIKTOKEN.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_TIKTOKEN)

import openai  # noqa: E402

from llm_client import AgentRunner, GPT5Point4Nano, OpenAIClient  # noqa: E402
from llm_client.testing import tool_script  # noqa: E402
from llm_client.testing.subprocess_server import spawn_server  # noqa: E402


async def lookup(key: str) -> str:
    """Look a key up.

    Args:
        key: the key.
    """
    return f"value of {key}"


def prompt(turns: int, tools: int, run: int) -> str:
    script = tool_script(
        *[[("lookup", {"key": f"k{t}-{i}"}) for i in range(tools)] for t in range(turns)]
    )
    return f"Run {run}: look the keys up. {script}"


async def raw_run(sdk: openai.AsyncOpenAI, api: str, text: str, spec: list[Any]) -> str:
    if api == "chat":
        messages: list[Any] = [{"role": "user", "content": text}]
        while True:
            completion = await sdk.chat.completions.create(
                model=GPT5Point4Nano.model_name, messages=messages, tools=spec
            )
            message = completion.choices[0].message
            if not message.tool_calls:
                return message.content or ""
            messages.append(message.model_dump(exclude_none=True))
            outputs = await asyncio.gather(
                *(lookup(**json.loads(c.function.arguments)) for c in message.tool_calls)  # type: ignore[union-attr]
            )
            messages.extend(
                {"role": "tool", "tool_call_id": c.id, "content": out}
                for c, out in zip(message.tool_calls, outputs, strict=True)
            )
    items: list[Any] = [{"role": "user", "content": text}]
    while True:
        response = await sdk.responses.create(
            model=GPT5Point4Nano.model_name, input=items, tools=spec
        )
        calls = [o for o in response.output if o.type == "function_call"]
        if not calls:
            return response.output_text
        outputs = await asyncio.gather(*(lookup(**json.loads(c.arguments)) for c in calls))
        items.extend(
            {
                "type": "function_call",
                "call_id": c.call_id,
                "name": c.name,
                "arguments": c.arguments,
            }
            for c in calls
        )
        items.extend(
            {"type": "function_call_output", "call_id": c.call_id, "output": out}
            for c, out in zip(calls, outputs, strict=True)
        )


async def client_run(client: OpenAIClient, api: str, text: str, spec: list[Any]) -> str:
    """The same loop by hand on ``OpenAIClient.invoke``: what the runner itself adds."""
    conversation: list[Any] = [{"role": "user", "content": text}]
    while True:
        result = await client.invoke(conversation, tools=spec)
        calls = result.tool_calls
        if not calls:
            return str(result.output)
        outputs = await asyncio.gather(*(lookup(**json.loads(c["arguments"])) for c in calls))
        if api == "chat":
            conversation.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]},
                        }
                        for c in calls
                    ],
                }
            )
            conversation.extend(
                {"role": "tool", "tool_call_id": c["id"], "content": out}
                for c, out in zip(calls, outputs, strict=True)
            )
        else:
            conversation.extend(
                {
                    "type": "function_call",
                    "call_id": c["id"],
                    "name": c["name"],
                    "arguments": c["arguments"],
                }
                for c in calls
            )
            conversation.extend(
                {"type": "function_call_output", "call_id": c["id"], "output": out}
                for c, out in zip(calls, outputs, strict=True)
            )


async def main(args: argparse.Namespace) -> None:
    proc, url = spawn_server()
    try:
        limits: dict[str, Any] = {}
        if not args.profile_limits:  # the limiter stays in the chain, but never makes us wait
            limits = {"tokens_per_minute": 10**10, "requests_per_minute": 10**8}
        client = OpenAIClient(
            GPT5Point4Nano,
            api=args.api,
            base_url=url,
            api_key="sk-bench",
            cache_backend=None,
            **limits,
        )
        runner = AgentRunner(client, [lookup])
        spec = [t.spec(args.api) for t in runner.tools.values()]
        sdk = openai.AsyncOpenAI(
            base_url=url,
            api_key="sk-bench",
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(),
        )
        counter = iter(range(10**9))

        async def agent_once() -> float:
            text = prompt(args.turns, args.tools, next(counter))
            start = time.perf_counter()
            result = await runner.run(messages=[{"role": "user", "content": text}])
            elapsed = time.perf_counter() - start
            assert result.turn_count == args.turns + 1, result.turn_count
            assert len(result.tool_calls) == args.turns * args.tools
            return elapsed

        async def raw_once() -> float:
            text = prompt(args.turns, args.tools, next(counter))
            start = time.perf_counter()
            answer = await raw_run(sdk, args.api, text, spec)
            elapsed = time.perf_counter() - start
            assert answer.startswith("Fake answer using tool result"), answer
            return elapsed

        async def client_once() -> float:
            text = prompt(args.turns, args.tools, next(counter))
            start = time.perf_counter()
            answer = await client_run(client, args.api, text, spec)
            elapsed = time.perf_counter() - start
            assert answer.startswith("Fake answer using tool result"), answer
            return elapsed

        sides = {"agent": agent_once, "raw": raw_once, "client": client_once}
        for _ in range(10):  # warm up every side: connections, encoders, code paths
            for once in sides.values():
                await once()
        rounds: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            times: dict[str, list[float]] = {name: [] for name in sides}
            for _ in range(args.runs):
                for name, once in sides.items():
                    times[name].append(await once())
            for name in sides:
                rounds[name].append(statistics.median(times[name]))
        agent = min(rounds["agent"])
        raw = min(rounds["raw"])
        by_hand = min(rounds["client"])
        calls = args.turns + 1
        print(
            f"api={args.api}  {args.turns} tool turns x {args.tools} parallel tools"
            f" (+1 answer) = {calls} model calls per run;"
            f" median of {args.runs} runs, best of {args.rounds} rounds"
        )
        print(f"{'':12}{'run ms':>10}{'per turn ms':>14}")
        print(f"{'agent':12}{agent * 1e3:10.2f}{agent * 1e3 / calls:14.3f}")
        print(f"{'raw SDK':12}{raw * 1e3:10.2f}{raw * 1e3 / calls:14.3f}")
        print(f"{'client loop':12}{by_hand * 1e3:10.2f}{by_hand * 1e3 / calls:14.3f}")
        print(f"ratio agent / raw SDK: {agent / raw:.3f}")
        print(
            f"overhead per turn vs raw SDK: {(agent - raw) * 1e3 / calls:+.3f} ms (target <= 1 ms)"
        )
        print(
            "runner's own overhead per turn (vs the loop by hand on client.invoke):"
            f" {(agent - by_hand) * 1e3 / calls:+.3f} ms"
        )
        await sdk.close()
        await client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--tools", type=int, default=3)
    parser.add_argument("--api", choices=["chat", "responses"], default="chat")
    parser.add_argument(
        "--profile-limits",
        action="store_true",
        help="keep the model's own rate limits (200k TPM, 1 s burst): the limiter then paces"
        " the turns, which measures the limiter, not the agent",
    )
    asyncio.run(main(parser.parse_args()))
