"""Model backends behind one protocol (`Policy.generate`), built by `load_policy`.

Backends are imported lazily: importing this package imports neither transformers nor
unsloth, so the `unsloth` backend can still be imported first (it must precede
transformers/peft/trl to patch them).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, TypeVar

from .base import Message, Policy, derive_seed

BACKENDS: tuple[str, ...] = ("auto", "hf", "vllm", "unsloth", "openai", "served")


def load_policy(backend: str, model: str, **kwargs: Any) -> Policy:
    """Build a policy; `policy.backend_name` says which backend it is ("hf", "vllm", ...), and
    for "auto" `policy.backend_reason` says why that one.

    - "auto": vllm where it is installed and its engine starts on this model, else hf, with a
      one-line notice (stderr) saying which and why. Takes the union of both's arguments.
    - "vllm": `VLLMPolicy.load(model, VLLMOptions(device, dtype, context_budget, threads, seed,
      max_model_len, kv_cache_gb, adapter, max_lora_rank), **engine_kwargs)`: the options' fields
      are given here as keywords, the rest go to `vllm.LLM` (hf's max_batch_size is dropped).
    - "hf": `HFPolicy.load(model, device=None, dtype=None, max_batch_size=32, context_budget=None,
      threads=None, seed=None)`; `model` = a local folder (or a hub name where the hub is reachable).
    - "unsloth": `UnslothPolicy.load(model, max_seq_length=4096, load_in_4bit=True, ...)`; GPU only.
    - "openai": `OpenAIPolicy(model, base_url=None, api_key=None, ...)`; any OpenAI-compatible server.
    - "served": `ServedPolicy.load(model, endpoints=[...], ...)`; running vLLM servers sampling what
      the in-process "vllm" backend samples (our prompt rendering, seeds, stop; llm/served.py).
      For both, `HTTPOptions`' fields (timeout, max_retries, backoff, max_workers) are keywords here.

    `endpoints` (the profile's llm.endpoints) is the "served" backend's alone: an empty list is
    dropped for the others, a non-empty one with another backend is refused (it would be ignored).
    """
    endpoints = kwargs.pop("endpoints", None)
    if endpoints and backend != "served":
        raise ValueError(f"llm.endpoints = {list(endpoints)!r} is set but backend = {backend!r}: set backend: served "
                         "to sample through those servers, or empty llm.endpoints")
    if backend == "served":
        from .served import SERVED_HTTP, ServedPolicy

        http, rest = _options(SERVED_HTTP, kwargs)
        return _named(ServedPolicy.load(model, endpoints=endpoints, http=http, **rest), "served")
    if backend == "auto":
        return _load_auto(model, **kwargs)
    if backend == "hf":
        from .hf import HFPolicy

        return _named(HFPolicy.load(model, **_without(kwargs, VLLM_ONLY)), "hf")
    if backend == "vllm":
        from .vllm import VLLMPolicy

        options, engine = _vllm_arguments(kwargs)
        return _named(VLLMPolicy.load(model, options, **engine), "vllm")
    if backend == "unsloth":
        from .unsloth import UnslothPolicy

        return _named(UnslothPolicy.load(model, **kwargs), "unsloth")
    if backend == "openai":
        from .openai import HTTPOptions, OpenAIPolicy

        http, rest = _options(HTTPOptions(), kwargs)
        return _named(OpenAIPolicy(model, http=http, **rest), "openai")
    raise ValueError(f"unknown backend {backend!r}; expected one of {list(BACKENDS)}")


#: `load_policy` arguments only the vllm backend takes (dropped when "auto" or "hf" loads hf).
VLLM_ONLY: tuple[str, ...] = ("max_model_len", "kv_cache_gb", "adapter", "max_lora_rank")


Options = TypeVar("Options")


def _options(defaults: Options, kwargs: dict[str, Any]) -> tuple[Options, dict[str, Any]]:
    """`kwargs` split into an options dataclass (`defaults` with the keywords that are its
    fields) and the other keywords."""
    names = {f.name for f in fields(defaults)}  # type: ignore[arg-type]
    chosen = {k: v for k, v in kwargs.items() if k in names}
    return replace(defaults, **chosen), {k: v for k, v in kwargs.items() if k not in names}  # type: ignore[type-var]


def _vllm_arguments(kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(VLLMOptions, engine keywords) of `load_policy`'s keywords; hf's max_batch_size is
    accepted and dropped (vLLM schedules by tokens)."""
    from .vllm import VLLMOptions

    options, engine = _options(VLLMOptions(), kwargs)
    engine.pop("max_batch_size", None)
    return options, engine


def _without(kwargs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k not in names}


def _named(policy: Any, name: str, reason: str | None = None) -> Any:
    """Record on the policy which backend it is (run manifests and model cards read it)."""
    try:
        policy.backend_name = name
        if reason is not None:
            policy.backend_reason = reason
    except AttributeError:  # a policy class with __slots__: the class attribute stands
        pass
    return policy


def _load_auto(model: str, **kwargs: Any) -> Policy:
    """vllm when importable and its engine starts, else hf; one notice line either way."""
    from .vllm import VLLMPolicy, notice, vllm_available

    ok, why = vllm_available()
    if ok:
        try:
            options, engine = _vllm_arguments(kwargs)
            policy = VLLMPolicy.load(model, options, **engine)
        except FileNotFoundError:
            raise  # no model: hf cannot load it either, and the error says what to do
        except Exception as err:  # noqa: BLE001 -- any failure to start falls back, and says why
            why = f"vllm did not start ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        else:
            reason = "vllm is installed and its engine started"
            notice(f"backend auto: vllm ({reason})")
            return _named(policy, "vllm", reason)
    from .hf import HFPolicy

    policy = HFPolicy.load(model, **_without(kwargs, VLLM_ONLY))
    notice(f"backend auto: hf ({why})")
    return _named(policy, "hf", why)


__all__ = ["BACKENDS", "Message", "Policy", "VLLM_ONLY", "derive_seed", "load_policy"]
