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
    import importlib

    if not hasattr(importlib.import_module("agentr_lib.envs.textcraft"), "TextCraftEnv"):
        pytest.skip("TextCraft env not written yet")
    from agentr_lib.envs import make_env
    from agentr_lib.evaluate import evaluate

    calls = policy.calls
    env = make_env("textcraft")
    tasks = env.task_ids("test")[:3]
    metrics = evaluate(policy, "textcraft", tasks, tmp_path, max_turns=2, max_new_tokens=8,
                       env_factory=lambda: make_env("textcraft"), progress=False)
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
