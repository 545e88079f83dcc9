"""The `served` backend: sampling through one or more running vLLM OpenAI-compatible servers
(`vllm serve MODEL ...`), seen by search, the model verifier and evaluation exactly as the
in-process `vllm` backend is seen.

Why a backend of its own and not `openai` (chat completions): the server would render the
chat template and truncate on its own. Here the prompt is rendered and truncated by our code
(`ChatSampler.prompt`, the in-process backends' own) from the model folder's tokenizer and sent
as token ids to `/v1/completions`, with the in-process backend's sampling parameters (n,
temperature, top_p 1, the chat template's end-of-turn token ids as stop, the per-request seed
`seed % 2**62`), and the reply's token ids are cut and decoded here as `VLLMPolicy` cuts and
decodes them. So a server started with the in-process engine's settings (`server_args`) sees
the same tokens and returns the same replies: greedy identical, sampled identical where the
server honours per-request seeds (vLLM does).

- Endpoints: conversation i of a `generate` call goes to `endpoints[i % len(endpoints)]`
  (all of them serve the same model; which one answers does not change the reply, the seed
  is the request's). Requests are concurrent (`http.max_workers` threads); the server batches them.
- A dropped connection, 5xx or timeout is retried with the same body, so the same seed
  (`openai.post_json`); a dead endpoint ends in an `OpenAIError` naming it after a bounded
  time, never a silent hang. Its search resumes tree by tree when rerun (the trees already
  written are loaded).
- LoRA: an adapter folder (an iteration's model, `adapter_config.json`) is loaded into every
  running server with vLLM's dynamic LoRA loading (`POST /v1/load_lora_adapter`; the server
  runs with `--enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`) under a name holding
  the adapter's content hash, so a retrained adapter in the same folder is a new adapter and
  no new engine starts per iteration. The server must read the same path (a shared run folder).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .base import Message, adapter_base, model_id
from .hf import check_model_source, stop_token_ids
from .openai import HTTPOptions, OpenAIError, post_json
from .sampler import EngineSampler, is_greedy
from .vllm import DEFAULT_CPU_KV_CACHE_TOKENS, kv_cache_bytes, read_model_config


#: a CPU server under a full batch is slow: longer requests, fewer retries, more of them at once
SERVED_HTTP = HTTPOptions(timeout=300.0, max_retries=3, backoff=1.0, max_workers=32)


def server_args(model: str | os.PathLike, device: str = "cpu", max_lora_rank: int | None = None,
                max_model_len: int | None = None) -> list[str]:
    """`vllm serve` arguments that make a server sample as `VLLMPolicy.load` does in process
    (its dtype, no generation_config defaults, prefix caching; on a CPU eager mode, no chunked
    prefill and the same KV cache), plus `--enable-lora` when `max_lora_rank` is given. The
    host, port, parallelism and the LoRA environment variable are the launcher's."""
    source = str(check_model_source(model))
    config = read_model_config(source) if Path(source).exists() else {}
    text = config.get("text_config", config)
    length = int(max_model_len or min(int(text.get("max_position_embeddings") or 4096), 32768))
    args = [source, "--generation-config", "vllm", "--enable-prefix-caching", "--max-model-len", str(length)]
    if device == "cpu":
        args += ["--dtype", "float32", "--enforce-eager", "--no-enable-chunked-prefill",
                 "--max-num-batched-tokens", str(max(8192, length)),
                 "--kv-cache-memory-bytes", str(kv_cache_bytes(config, DEFAULT_CPU_KV_CACHE_TOKENS))]
    else:
        args += ["--dtype", "bfloat16"]
    if max_lora_rank:
        args += ["--enable-lora", "--max-lora-rank", str(int(max_lora_rank)), "--max-loras", "2"]
    return args


def _v1(endpoint: str) -> str:
    """An endpoint's /v1 root, whether given as http://host:port or http://host:port/v1."""
    root = str(endpoint).rstrip("/")
    return root if root.endswith("/v1") else root + "/v1"


class ServedPolicy(EngineSampler):
    """Policy over running vLLM servers (see the module docstring).

    Attributes the pipeline reads, as `VLLMPolicy`'s: `backend_name` ("served"), `model_id`
    (the folder's content hash, adapter + base for a LoRA iteration), `adapter`, `calls`,
    `generated_tokens`, `prompt_tokens`, `batch_sizes`, `truncated_prompts`; and `endpoints`,
    `served_model` (the name requests carry: the base model's or the loaded adapter's),
    `requests` (HTTP attempts, retries included)."""

    backend_name = "served"

    def __init__(self, endpoints: Sequence[str], tokenizer: Any, served_model: str, max_model_len: int,
                 context_budget: int | None = None, http: HTTPOptions = SERVED_HTTP, api_key: str = "") -> None:
        if not endpoints:
            raise ValueError("backend 'served' needs at least one endpoint (the profile's llm.endpoints)")
        super().__init__(tokenizer, max_model_len, context_budget)
        self.endpoints = [_v1(e) for e in endpoints]
        self.served_model = served_model
        self.http = http
        self.api_key = api_key
        self.stop_ids = stop_token_ids(tokenizer)
        self.requests = 0

    # ---- loading -------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        model: str | os.PathLike,
        endpoints: Sequence[str] | None = None,
        context_budget: int | None = None,
        adapter: str | os.PathLike | None = None,
        served_model: str | None = None,
        http: HTTPOptions = SERVED_HTTP,
        connect_timeout: float = 10.0,
        api_key: str | None = None,
        **ignored: Any,
    ) -> "ServedPolicy":
        """Check every endpoint serves `model`'s base model (a clear error naming the endpoint
        and what it serves otherwise), load the adapter (or a PEFT adapter folder passed as
        `model`) into each, and return the policy.

        `served_model`: the base model's name on the servers when they were started with
        `--served-model-name` (default: the one they serve whose root is this folder).
        `http`: the generation requests' timeout, retries and concurrency (`SERVED_HTTP`);
        `connect_timeout`: seconds per model-list / adapter-load request. `ignored`: the
        in-process backends' arguments (threads, seed, kv_cache_gb, ...), which the servers'
        own command lines set."""
        from transformers import AutoTokenizer

        endpoints = list(endpoints or [])
        if not endpoints:
            raise ValueError("backend 'served': no endpoints given; set the profile's llm.endpoints to the servers' "
                             "URLs, e.g. [http://127.0.0.1:8000/v1]")
        source = str(check_model_source(model))
        base = adapter_base(source) if adapter is None else None
        if base is not None:
            source, adapter = str(check_model_source(base)), source
        key = os.environ.get("OPENAI_API_KEY", "") if api_key is None else api_key
        lengths, names = [], set()
        for endpoint in endpoints:
            name, length = _served_base(_v1(endpoint), source, served_model, key, connect_timeout)
            names.add(name)
            lengths.append(length)
        if len(names) > 1:
            raise ValueError(f"backend 'served': the endpoints serve different model names {sorted(names)}; "
                             "every endpoint must serve the same model")
        name = names.pop()
        tokenizer = AutoTokenizer.from_pretrained(
            adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists() else source)
        if adapter is not None:
            adapter = str(Path(check_model_source(adapter)).resolve())
            lora_name = "agentr-" + model_id(adapter).split("+")[0][:16]
            for endpoint in endpoints:
                load_adapter(_v1(endpoint), lora_name, adapter, key, connect_timeout)
            name = lora_name
        policy = cls(endpoints, tokenizer, name, min(lengths), context_budget=context_budget, http=http, api_key=key)
        policy.model_id = model_id(adapter or source)
        policy.adapter = adapter
        return policy

    # ---- generation -------------------------------------------------------------------
    def generate(
        self,
        conversations: list[list[Message]],
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = 128,
        seeds: Sequence[int] | None = None,
    ) -> list[list[str]]:
        """For each conversation, `n` assistant replies (temperature 0 = greedy: one reply
        copied n times), one request per conversation with `VLLMPolicy.generate`'s sampling
        parameters."""
        seeds = self._call_seeds(conversations, seeds)
        if not conversations:
            return []
        greedy = is_greedy(temperature)
        bodies = []
        for conversation, seed in zip(conversations, seeds):
            ids = self.tokenizer(self.prompt(conversation, max_new_tokens), add_special_tokens=False)["input_ids"]
            bodies.append({
                "model": self.served_model, "prompt": ids, "n": 1 if greedy else int(n),
                "temperature": 0.0 if greedy else float(temperature), "top_p": 1.0, "max_tokens": int(max_new_tokens),
                "stop_token_ids": list(self.stop_ids), "seed": None if greedy else int(seed) % 2**62,
                "return_token_ids": True,
            })
            self.prompt_tokens += len(ids)
        self.batch_sizes.append(len(bodies))
        jobs = [(self.endpoints[i % len(self.endpoints)], body) for i, body in enumerate(bodies)]
        workers = min(max(1, self.http.max_workers), len(jobs))
        if workers == 1:
            results = [self._complete(*job) for job in jobs]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(lambda job: self._complete(*job), jobs))
        return [texts * int(n) if greedy else texts for texts in results]

    def _complete(self, endpoint: str, body: dict[str, Any]) -> list[str]:
        """One request's replies: token ids cut at the first end-of-turn token, decoded
        without special tokens and stripped (as `VLLMPolicy` does)."""
        result = post_json(endpoint + "/completions", body, api_key=self.api_key, timeout=self.http.timeout,
                           max_retries=self.http.max_retries, backoff=self.http.backoff,
                           on_attempt=self._count_request, what=f"model {self.served_model!r}")
        choices = result.get("choices")
        if not isinstance(choices, list) or len(choices) != body["n"]:
            raise OpenAIError(f"{endpoint}/completions: expected {body['n']} choices, got {str(result)[:300]}")
        texts = []
        for choice in sorted(choices, key=lambda c: c.get("index", 0)):
            ids = choice.get("token_ids")
            if ids is None:
                raise OpenAIError(f"{endpoint}/completions: the reply has no token_ids (return_token_ids needs "
                                  "vLLM >= 0.10.2): this backend decodes the tokens itself")
            texts.append(self._decode(ids))
        return texts

    def _count_request(self) -> None:
        self.requests += 1


def _served_base(endpoint: str, source: str, served_model: str | None, api_key: str,
                 timeout: float) -> tuple[str, int]:
    """(name, max_model_len) of the base model `endpoint` serves for `source`: the one named
    `served_model`, else the one whose root is the folder (as given or resolved), else the
    only base model it serves when `source` is a hub name. Errors name the endpoint."""
    try:
        listing = post_json(endpoint + "/models", None, api_key=api_key, timeout=timeout, max_retries=1, backoff=0.5)
    except OpenAIError as err:
        raise OpenAIError(f"backend 'served': endpoint {endpoint} is not answering ({err}); start it with "
                          f"`vllm serve {' '.join(server_args(source))} --host HOST --port PORT`") from err
    bases = [m for m in listing.get("data") or [] if not m.get("parent")]
    wanted = {source, str(Path(source).resolve())} if Path(source).exists() else {source}
    for entry in bases:
        if (served_model and entry.get("id") == served_model) or (
                not served_model and (entry.get("root") in wanted or entry.get("id") in wanted)):
            return entry["id"], int(entry.get("max_model_len") or 4096)
    if not served_model and not Path(source).exists() and len(bases) == 1:
        return bases[0]["id"], int(bases[0].get("max_model_len") or 4096)
    serves = [(m.get("id"), m.get("root")) for m in bases]
    raise ValueError(f"backend 'served': endpoint {endpoint} serves {serves} (id, root), not the model "
                     f"{served_model or source!r} this run samples; start it on that folder (or pass served_model)")


def load_adapter(endpoint: str, name: str, path: str, api_key: str = "", timeout: float = 60.0) -> None:
    """Load a LoRA adapter into a running vLLM server under `name` (nothing to do when it is
    already loaded: a second shard or a resumed notebook loads the same adapter)."""
    listing = post_json(endpoint + "/models", None, api_key=api_key, timeout=timeout, max_retries=1, backoff=0.5)
    if any(m.get("id") == name for m in listing.get("data") or []):
        return
    root = endpoint.removesuffix("/v1")
    try:
        post_json(root + "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path}, api_key=api_key,
                  timeout=timeout, max_retries=1, backoff=0.5)
    except OpenAIError as err:
        if "already" in str(err):
            return
        hint = ("the server must run with --enable-lora, a --max-lora-rank at least the adapter's r and "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, and read the adapter's path (a shared run folder)")
        raise OpenAIError(f"backend 'served': loading adapter {path} into {endpoint} failed: {err}; {hint}") from err


def main(argv: list[str] | None = None) -> int:
    """Print `server_args` (for `vllm serve $(python -m agentr_lib.llm.served MODEL) --port ...`)."""
    import argparse
    import shlex

    parser = argparse.ArgumentParser(prog="python -m agentr_lib.llm.served", description=main.__doc__)
    parser.add_argument("model", help="the model folder (or hub name) the run samples: its base model")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--max-lora-rank", type=int, default=None, help="LoRA runs: the profile's sft.lora_r")
    parser.add_argument("--max-model-len", type=int, default=None)
    args = parser.parse_args(argv)
    print(shlex.join(server_args(args.model, args.device, args.max_lora_rank, args.max_model_len)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
