# ruff: noqa: I001  (the snippet below is the seed README's, byte for byte)
"""The seed README's agent example, unchanged inside ``main()`` (it used top-level await)."""

import asyncio


async def main() -> None:
    from llm_client import OpenAIClient, Tool, AgentRunner

    async def get_time(zone: str) -> str:
        return f"time in {zone}"

    tools = [
        Tool(
            name="get_time",
            description="Get time in a specific zone.",
            parameters={
                "type": "object",
                "properties": {"zone": {"type": "string"}},
                "required": ["zone"],
            },
            func=get_time,
        )
    ]

    client = OpenAIClient("gpt-5-nano")
    runner = AgentRunner(client, tools)
    result = await runner.run(messages=[{"role": "user", "content": "What time is it in UTC?"}])
    print(result.output)


if __name__ == "__main__":
    asyncio.run(main())
