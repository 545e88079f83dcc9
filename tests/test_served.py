"""Served sampling (issue 33 part 1): the `served` backend against a real vLLM
OpenAI-compatible server on 127.0.0.1 with the micro model, compared with the in-process vLLM
engine: a seeded greedy search and an evaluation give identical trees and episodes; a sampled
search's agreement is measured and printed; an iteration's LoRA adapter is loaded into the
running server; killing the server mid-search is a clear error naming it within seconds, and
the search resumes through a restarted server. Fast checks (no vLLM) cover the retry with the
same seed and a dead endpoint at load time."""

from __future__ import annotations

import copy
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fake_env import CounterEnv, NumberLine
from micro_model import build_micro_model

from agentr_lib.llm import load_policy
from agentr_lib.llm.openai import OpenAIError, post_json

VLLM_PLATFORM = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")


# ---- fast: the HTTP contract, no vLLM ------------------------------------------------


def test_a_dropped_connection_is_retried_with_the_same_body_and_seed():
    """The first connection is closed without a reply (a server restarting, a proxy dropping
    it); the retry sends the identical body, so the identical seed."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            if len(bodies) == 1:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            data = json.dumps({"ok": len(bodies)}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/completions"
        reply = post_json(url, {"prompt": [1, 2], "seed": 12345}, timeout=5, max_retries=2, backoff=0.01)
    finally:
        server.shutdown()
        server.server_close()
    assert reply == {"ok": 2} and len(bodies) == 2 and bodies[0] == bodies[1]
    assert json.loads(bodies[1])["seed"] == 12345


def test_a_dead_endpoint_is_a_clear_error_naming_it_within_a_bounded_time(tmp_path):
    model = build_micro_model(tmp_path / "micro")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(OpenAIError, match=rf"endpoint http://127.0.0.1:{port}/v1 is not answering.*vllm serve"):
        load_policy("served", str(model), endpoints=[f"http://127.0.0.1:{port}"], connect_timeout=2)
    assert time.monotonic() - start < 10
    with pytest.raises(ValueError, match="no endpoints given"):
        load_policy("served", str(model), endpoints=[])
    with pytest.raises(ValueError, match=r"llm.endpoints = \['http://x:1/v1'\] is set but backend = 'hf'"):
        load_policy("hf", str(model), endpoints=["http://x:1/v1"])


# ---- slow: a real vLLM server ----------------------------------------------------------


class VLLMServer:
    """`python -m vllm.entrypoints.openai.api_server` on 127.0.0.1 (its own process group, so
    stop() ends its engine processes too), started with `served.server_args` (the in-process
    engine's settings) and dynamic LoRA loading on."""

    def __init__(self, model: Path, log: Path, max_lora_rank: int = 8) -> None:
        from agentr_lib.llm.served import server_args

        self.args = server_args(model, max_lora_rank=max_lora_rank)
        self.log = log
        self.process: subprocess.Popen | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "OMP_NUM_THREADS": "1",
               "VLLM_LOGGING_LEVEL": "WARNING"}
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", *self.args,
                 "--host", "127.0.0.1", "--port", str(self.port), "--seed", "0"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, limit: float = 150.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM server exited ({self.process.returncode}): {self.log.read_text()[-3000:]}")
            try:
                post_json(self.endpoint + "/models", None, timeout=2, max_retries=0)
                return
            except OpenAIError:
                time.sleep(1)
        raise RuntimeError(f"vLLM server not ready after {limit} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(server, base model, LoRA adapter, in-process engine on the adapter): the server starts
    first so its start overlaps the adapter's training and the engine's start."""
    if not VLLM_PLATFORM:
        pytest.skip("no vllm wheel for this platform: the served backend's server is vLLM")
    pytest.importorskip("vllm")
    from test_lora import CONFIG, rows

    from agentr_lib.train import SFTConfig, train_sft

    root = tmp_path_factory.mktemp("served")
    base = build_micro_model(root / "base")
    server = VLLMServer(base, root / "server.log")
    try:
        server.start()
        adapter = train_sft(base, rows(), root / "iter1", SFTConfig(seed=1, **CONFIG), backend="hf")["outputs"]["model"]
        engine = load_policy("vllm", adapter, kv_cache_gb=0.05)
        server.wait_ready()
        yield server, base, Path(adapter), engine
    finally:
        server.stop()


def _base_view(engine):
    """The in-process engine without its adapter: the server also runs with LoRA enabled."""
    view = copy.copy(engine)
    view.lora_request = None
    return view


def _nodes(trees) -> list:
    from agentr_lib.mcts import tree_to_dict

    return [tree_to_dict(tree)["nodes"] for tree in trees]


def _search(policy, config, out_dir=None):
    from agentr_lib.mcts import search_trees

    return search_trees(policy, NumberLine, [1, 2, 3], config, out_dir=out_dir, progress=False)


@pytest.mark.slow
def test_greedy_search_and_evaluation_through_the_server_equal_the_in_process_engine(served, tmp_path):
    from agentr_lib.evaluate import EvalConfig, Runner, evaluate
    from agentr_lib.mcts import MCTSConfig

    server, base, _, engine = served
    policy = load_policy("served", str(base), endpoints=[server.endpoint])
    in_process = _base_view(engine)
    assert policy.backend_name == "served" and policy.model_id == in_process.model_id.split("+")[-1]
    greedy = MCTSConfig(simulations=4, n_gen=3, temperature=0.0, max_depth=4, max_new_tokens=12, batch_trees=3)
    assert _nodes(_search(policy, greedy).trees) == _nodes(_search(in_process, greedy).trees)

    runs = {}
    for name, sampler in (("served", policy), ("in_process", in_process)):
        evaluate(sampler, "counter", [1, 2, 3], tmp_path / name, EvalConfig(max_turns=3, max_new_tokens=12),
                 Runner(envs=CounterEnv, progress=False))
        runs[name] = sorted((tmp_path / name / "counter.jsonl").read_text().splitlines())
    assert runs["served"] == runs["in_process"] and len(runs["served"]) == 3
    assert policy.calls > 0 and policy.generated_tokens > 0


@pytest.mark.slow
def test_sampled_search_agreement_with_the_in_process_engine(served):
    """vLLM honours per-request seeds over HTTP, so a seeded sampled search agrees reply by
    reply; the agreement is printed (run with -s) and must be complete for the replies."""
    from agentr_lib.mcts import MCTSConfig

    server, base, _, engine = served
    policy = load_policy("served", str(base), endpoints=[server.endpoint, server.endpoint])  # two endpoint slots
    sampled = MCTSConfig(simulations=4, n_gen=3, temperature=1.0, max_depth=4, max_new_tokens=12, batch_trees=3)
    ours, theirs = _nodes(_search(policy, sampled).trees), _nodes(_search(_base_view(engine), sampled).trees)
    pairs = [(a["response"], b["response"]) for x, y in zip(ours, theirs) for a, b in zip(x, y)]
    same = sum(a == b for a, b in pairs)
    trees_same = sum(x == y for x, y in zip(ours, theirs))
    print(f"\nsampled search, served vs in-process: {trees_same}/{len(ours)} trees identical, "
          f"{same}/{len(pairs)} node replies identical")
    assert len(pairs) > len(ours) and same == len(pairs) and trees_same == len(ours)


@pytest.mark.slow
def test_an_iterations_adapter_is_loaded_into_the_running_server(served, tmp_path):
    from agentr_lib.evaluate import EvalConfig, Runner, evaluate

    server, base, adapter, engine = served
    conversations = [[{"role": "user", "content": f"Goal: craft {i} stick."}] for i in range(4)]
    policy = load_policy("served", str(adapter), endpoints=[server.endpoint])
    assert policy.adapter == str(adapter.resolve()) and policy.served_model.startswith("agentr-")
    assert policy.model_id == engine.model_id
    listing = post_json(server.endpoint + "/models", None, timeout=5)
    assert policy.served_model in [m["id"] for m in listing["data"]], "loaded as a LoRA module of the running server"
    with_adapter = policy.generate(conversations, max_new_tokens=12)
    assert with_adapter == engine.generate(conversations, max_new_tokens=12)
    plain = load_policy("served", str(base), endpoints=[server.endpoint])
    assert with_adapter != plain.generate(conversations, max_new_tokens=12), "the adapter changes what is sampled"
    again = load_policy("served", str(adapter), endpoints=[server.endpoint])  # a second shard: already loaded
    assert again.served_model == policy.served_model
    episodes = {}
    for name, sampler in (("served", policy), ("in_process", engine)):  # the iteration's evaluation
        evaluate(sampler, "counter", [1, 2, 3], tmp_path / name, EvalConfig(max_turns=3, max_new_tokens=12),
                 Runner(envs=CounterEnv, progress=False))
        episodes[name] = sorted((tmp_path / name / "counter.jsonl").read_text().splitlines())
    assert episodes["served"] == episodes["in_process"]


@pytest.mark.slow
def test_killing_the_server_mid_search_is_a_clear_error_and_the_search_resumes(served, tmp_path):
    """Last in this file: it restarts the module's server (on a new port)."""
    from agentr_lib.mcts import MCTSConfig

    server, base, _, engine = served
    config = MCTSConfig(simulations=3, n_gen=2, temperature=1.0, max_depth=3, max_new_tokens=12, batch_trees=1)
    reference = tmp_path / "reference"
    _search(_base_view(engine), config, out_dir=reference)
    policy = load_policy("served", str(base), endpoints=[server.endpoint], max_retries=2, backoff=0.2, timeout=30)
    generate, killed = policy.generate, []
    out = tmp_path / "served"

    def generate_then_kill(*args, **kwargs):
        if not killed and any(out.glob("*.json")):  # the first tree is written: kill the server mid-search
            server.stop()
            killed.append(time.monotonic())
        return generate(*args, **kwargs)

    policy.generate = generate_then_kill
    with pytest.raises(OpenAIError, match=rf"{server.endpoint}/completions: gave up after 3 attempts"):
        _search(policy, config, out_dir=out)
    assert time.monotonic() - killed[0] < 15, "a dead server is an error within the retries' bounded time"
    written = sorted(p.name for p in out.glob("*.json"))
    assert written and len(written) < 3

    server.start()
    server.wait_ready()
    resumed = _search(load_policy("served", str(base), endpoints=[server.endpoint]), config, out_dir=out)
    assert resumed.loaded == [int(name.split("-")[1].split(".")[0]) for name in written] and resumed.searched
    for path in sorted(reference.glob("*.json")):
        ours, theirs = json.loads((out / path.name).read_text()), json.loads(path.read_text())
        assert ours["nodes"] == theirs["nodes"], path.name


@pytest.mark.slow
def test_server_args_are_the_in_process_engines_settings(served):
    """`served.server_args` restates `VLLMPolicy.load`'s engine settings for `vllm serve`: a
    change to one without the other would make the server sample otherwise."""
    import torch

    from agentr_lib.llm.served import server_args

    _, base, _, engine = served
    args = server_args(base, device="cpu")
    value = {name: args[i + 1] for i, name in enumerate(args) if name.startswith("--") and i + 1 < len(args)
             and not args[i + 1].startswith("--")}
    config = engine.llm.llm_engine.vllm_config
    assert args[0] == str(base) and value["--generation-config"] == config.model_config.generation_config == "vllm"
    assert int(value["--max-model-len"]) == config.model_config.max_model_len == engine.max_model_len
    assert value["--dtype"] == "float32" and config.model_config.dtype == torch.float32
    assert "--enforce-eager" in args and config.model_config.enforce_eager
    assert "--no-enable-chunked-prefill" in args and not config.scheduler_config.enable_chunked_prefill
    assert int(value["--max-num-batched-tokens"]) == config.scheduler_config.max_num_batched_tokens
    assert "--enable-prefix-caching" in args and config.cache_config.enable_prefix_caching
