"""The `openai` backend: any OpenAI-compatible `/v1/chat/completions` endpoint (a vLLM
server, an API model for the closed-model rows of Table 2), with urllib only (no new
dependency).

- `n` samples per conversation are requested in one call; a server that returns fewer
  choices (some ignore `n`) is asked again for the rest.
- 5xx, 429 and connection errors are retried with exponential backoff; any other 4xx raises
  at once with the server's message (a wrong model name or key never retries forever).
- Conversations of one `generate` call are sent concurrently (`max_workers` threads).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .base import Message, derive_seed


class OpenAIError(RuntimeError):
    """The server refused a request (4xx) or kept failing after all retries."""


class OpenAIPolicy:
    """Policy over an OpenAI-compatible chat endpoint.

    `base_url`: e.g. "http://127.0.0.1:8000/v1" (default: $OPENAI_BASE_URL or
    https://api.openai.com/v1); `api_key`: default $<api_key_env> (may be empty for a local
    server); `extra_body`: merged into every request (e.g. {"stop": [...]})."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_workers: int = 8,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env, "")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_workers = max(1, max_workers)
        self.extra_body = dict(extra_body or {})
        self.calls = 0
        self.requests = 0

    @property
    def url(self) -> str:
        return self.base_url + "/chat/completions"

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on 5xx/429/connection errors; a 4xx raises OpenAIError at once."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            self.requests += 1
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                message = err.read().decode("utf-8", "replace")[:2000]
                try:
                    message = json.loads(message)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    pass
                if err.code < 500 and err.code != 429:
                    raise OpenAIError(f"{self.url}: HTTP {err.code} for model {self.model!r}: {message}") from err
                last = f"HTTP {err.code}: {message}"
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
                last = f"{type(err).__name__}: {err}"
        raise OpenAIError(f"{self.url}: gave up after {self.max_retries + 1} attempts; last error: {last}")

    def _complete(self, messages: list[Message], n: int, temperature: float, max_new_tokens: int,
                  seed: int | None = None) -> list[str]:
        clean = [{"role": m["role"], "content": m["content"]} for m in messages]
        replies: list[str] = []
        for ask in range(max(1, n) * 2 + 2):  # a server that ignores n gets at most this many asks
            if len(replies) >= n:
                break
            body = {"model": self.model, "messages": clean, "n": n - len(replies),
                    "temperature": float(temperature), "max_tokens": int(max_new_tokens), **self.extra_body}
            if seed is not None:  # servers that honour it (vLLM, OpenAI) sample reproducibly
                body["seed"] = derive_seed(seed, ask) if ask else int(seed)
            result = self._post(body)
            choices = result.get("choices")
            if not isinstance(choices, list):
                raise OpenAIError(f"{self.url}: response has no 'choices' list: {str(result)[:500]}")
            for choice in choices:
                content = (choice.get("message") or {}).get("content")
                replies.append((content or "").strip())
        if len(replies) < n:
            raise OpenAIError(f"{self.url}: asked for {n} choices, the server kept returning fewer ({len(replies)})")
        return replies[:n]

    def generate(
        self,
        conversations: list[list[Message]],
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = 128,
        seeds: Sequence[int] | None = None,
    ) -> list[list[str]]:
        """For each conversation, `n` assistant replies; `seeds[i]` is sent as the request's seed."""
        self.calls += 1
        per_request = list(seeds) if seeds is not None else [None] * len(conversations)
        jobs = list(zip(conversations, per_request))
        if len(jobs) <= 1 or self.max_workers == 1:
            return [self._complete(c, n, temperature, max_new_tokens, seed) for c, seed in jobs]
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(jobs))) as pool:
            return list(pool.map(lambda job: self._complete(job[0], n, temperature, max_new_tokens, job[1]), jobs))
