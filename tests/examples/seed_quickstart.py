# ruff: noqa: I001  (kept byte-for-byte as the seed README prints it)
"""The seed README's quickstart, verbatim below this line (it never calls close())."""

import asyncio
from llm_client import OpenAIClient, GPT5Nano


async def main() -> None:
    client = OpenAIClient(GPT5Nano, cache_backend=None)

    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello, how are you?"},
    ]

    response = await client.get_response(messages=messages)
    print(response["output"])


if __name__ == "__main__":
    asyncio.run(main())
