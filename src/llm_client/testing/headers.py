"""The headers every answer carries: OpenAI's rate-limit headers and a request id."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .quotas import Quota

__all__ = ["DEFAULT_RATE_LIMIT_HEADERS", "RateLimitHeaders", "format_duration"]

#: Rate-limit headers sent with every response unless changed by ``set_rate_limit_headers``.
DEFAULT_RATE_LIMIT_HEADERS: Mapping[str, str] = {
    "x-ratelimit-limit-requests": "1000000",
    "x-ratelimit-limit-tokens": "10000000000",
    "x-ratelimit-remaining-requests": "999999",
    "x-ratelimit-remaining-tokens": "9999999000",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "1ms",
}


def format_duration(seconds: float) -> str:
    """A duration as OpenAI's rate-limit headers write it: ``20ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = f"{round(secs, 3):g}s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{secs_text}"
    if minutes:
        return f"{int(minutes)}m{secs_text}"
    return secs_text


class RateLimitHeaders:
    """The header methods of :class:`~llm_client.testing.server.FakeOpenAI`."""

    rate_limit_headers: bool
    quota: Quota | None
    _rate_headers: dict[str, str]
    _id_tag: str
    _id_counter: Iterator[int]

    def _new_id(self, prefix: str) -> str:
        """A unique id (random per server, then a counter: cheaper than uuid4 per request)."""
        return f"{prefix}{self._id_tag}{next(self._id_counter):012x}"

    def set_rate_limit_headers(self, headers: Mapping[str, str | int | float | None]) -> None:
        """Change the rate-limit headers sent with every response.

        Keys are header names, with or without the ``x-ratelimit-`` prefix
        (``"remaining-requests"``); a value of None removes that header.
        """
        updated = dict(self._rate_headers)
        for key, value in headers.items():
            name = key.lower()
            if not name.startswith("x-ratelimit-"):
                name = "x-ratelimit-" + name
            if value is None:
                updated.pop(name, None)
            else:
                updated[name] = str(value)
        self._rate_headers = updated  # swapped whole, so readers need no lock

    def reset_rate_limit_headers(self) -> None:
        """Restore :data:`DEFAULT_RATE_LIMIT_HEADERS`."""
        self._rate_headers = dict(DEFAULT_RATE_LIMIT_HEADERS)

    @property
    def rate_limit_header_values(self) -> dict[str, str]:
        """The rate-limit headers currently sent (a copy)."""
        return dict(self._rate_headers)

    def _headers(self, content_type: str | None = "application/json") -> dict[str, str]:
        headers = dict(self._rate_headers) if self.rate_limit_headers else {}
        if self.quota is not None and self.rate_limit_headers:
            headers.update(self.quota.headers())  # truthful: the quota's state right now
        headers["x-request-id"] = self._new_id("req_")
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers
