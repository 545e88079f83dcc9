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

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .base import Message, derive_seed


class OpenAIError(RuntimeError):
    """The server refused a request (4xx) or kept failing after all retries."""


def post_json(
    url: str,
    body: dict[str, Any] | None,
    api_key: str = "",
    timeout: float = 120.0,
    max_retries: int = 5,
    backoff: float = 1.0,
    on_attempt: Callable[[], None] | None = None,
    what: str = "",
) -> dict[str, Any]:
    """POST `body` as JSON (GET when `body` is None) and return the JSON reply, retrying the
    identical request (same body, so the same seed) on 5xx, 429, a refused or dropped
    connection and a timeout, with exponential backoff; a 4xx raises OpenAIError at once with
    the server's message (a wrong model name or key never retries forever); a 2xx reply that is
    not JSON comes back as {"text": reply}. Every attempt is
    bounded by `timeout` seconds, so a dead or hung server ends in an OpenAIError naming `url`
    after at most (max_retries + 1) * timeout seconds plus the backoff, never a silent hang."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    last = ""
    for attempt in range(max_retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        if on_attempt is not None:
            on_attempt()
        request = urllib.request.Request(url, data=data, headers=headers, method="GET" if data is None else "POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read().decode("utf-8")
            try:
                return json.loads(text) if text.strip() else {}
            except ValueError:  # a plain-text success (vLLM's /v1/load_lora_adapter answers "Success: ...")
                return {"text": text}
        except urllib.error.HTTPError as err:
            message = err.read().decode("utf-8", "replace")[:2000]
            try:
                message = json.loads(message)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                pass
            if err.code < 500 and err.code != 429:
                raise OpenAIError(f"{url}: HTTP {err.code}{' for ' + what if what else ''}: {message}") from err
            last = f"HTTP {err.code}: {message}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, http.client.HTTPException) as err:
            last = f"{type(err).__name__}: {getattr(err, 'reason', None) or err}"
    raise OpenAIError(f"{url}: gave up after {max_retries + 1} attempts ({timeout:g} s timeout each); last error: {last}")


@dataclass(frozen=True)
class HTTPOptions:
    """How a backend talks to its servers (`openai`, `served`): seconds per request, retries of a
    failed request (5xx, 429, a dropped connection or a timeout; `post_json`), the backoff base in
    seconds, and the requests of one `generate` call sent at once."""

    timeout: float = 120.0
    max_retries: int = 5
    backoff: float = 1.0
    max_workers: int = 8


class OpenAIPolicy:
    """Policy over an OpenAI-compatible chat endpoint.

    `base_url`: e.g. "http://127.0.0.1:8000/v1" (default: $OPENAI_BASE_URL or
    https://api.openai.com/v1); `api_key`: default $<api_key_env> (may be empty for a local
    server); `http`: timeouts, retries and concurrency; `extra_body`: merged into every request
    (e.g. {"stop": [...]})."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        http: HTTPOptions = HTTPOptions(),
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env, "")
        self.http = http
        self.extra_body = dict(extra_body or {})
        self.calls = 0
        self.requests = 0

    @property
    def url(self) -> str:
        return self.base_url + "/chat/completions"

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        return post_json(self.url, body, api_key=self.api_key, timeout=self.http.timeout,
                         max_retries=self.http.max_retries, backoff=self.http.backoff, on_attempt=self._count_request,
                         what=f"model {self.model!r}")

    def _count_request(self) -> None:
        self.requests += 1

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
        workers = min(max(1, self.http.max_workers), len(jobs))
        if workers <= 1:
            return [self._complete(c, n, temperature, max_new_tokens, seed) for c, seed in jobs]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda job: self._complete(job[0], n, temperature, max_new_tokens, job[1]), jobs))
