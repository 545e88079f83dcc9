"""The embedded-model build, agentr_lib.build (micro size, seconds): loadable, real chat template,
deterministic, resumable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from agentr_lib.agent import format_response, opening_messages
from agentr_lib.build.__main__ import main
from agentr_lib.build.bc import BuildCutShort, build_tiny_model
from agentr_lib.build.tokenizer import CHAT_TEMPLATE
from agentr_lib.models import resolve_spec


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("a") / "m", size="micro", seed=0, progress=False)


def test_micro_build_loads_and_renders_an_agent_conversation(micro):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro)
    model = AutoModelForCausalLM.from_pretrained(micro).eval()
    assert model.config.model_type == "llama"
    messages = opening_messages("Craft the goal item.", "Goal: craft oak planks.")
    messages.append({"role": "assistant", "content": format_response("oak planks needs 1 oak logs.", "get 1 oak logs")})
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<|im_start|>user\nCraft the goal item.<|im_end|>\n"
        "<|im_start|>assistant\nOk.<|im_end|>\n"
        "<|im_start|>user\nGoal: craft oak planks.<|im_end|>\n"
        "<|im_start|>assistant\nThought: oak planks needs 1 oak logs.\nAction: get 1 oak logs<|im_end|>\n"
    ), "ChatML without a default system prompt"
    prompt = tokenizer.apply_chat_template(messages[:3], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    # the special tokens are single tokens; eos = <|im_end|>, pad = <|endoftext|>
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert len(tokenizer(special, add_special_tokens=False)["input_ids"]) == 1
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    # {% generation %} markers: transformers' assistant mask covers exactly the assistant contents + <|im_end|>
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids = encoded["input_ids"]
    marked = tokenizer.decode([i for i, m in zip(ids, encoded["assistant_masks"]) if m])
    assert marked == "Ok.<|im_end|>" + messages[-1]["content"] + "<|im_end|>"
    ids_t = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    out = model.generate(input_ids=ids_t, attention_mask=torch.ones_like(ids_t), max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids_t.shape[1]


def test_tokenizer_reloads_exactly_as_trained(tmp_path):
    """Regression: transformers reloads any tokenizer saved beside a qwen2 config as Qwen2Tokenizer;
    a BPE trained with another pre-tokenizer then split `get 12 oak logs` differently at
    inference than in training."""
    from transformers import AutoTokenizer

    from agentr_lib.envs import make_env
    from agentr_lib.build.demos import expert_episode
    from agentr_lib.build.model import make_model
    from agentr_lib.build.tokenizer import train_tokenizer

    env = make_env("textcraft")
    texts = [m["content"] for t in env.task_ids("train")[:40] for m in expert_episode(env, t)["messages"]]
    trained = train_tokenizer(texts, 400)
    trained.save_pretrained(tmp_path)
    make_model(resolve_spec("micro"), trained).save_pretrained(tmp_path)  # the model's config.json beside it
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    probes = texts[:20] + ["Action: get 12 oak logs", "craft 4 acacia planks using 1 acacia logs", "Ünïcode ✓ 3.5"]
    for text in probes:
        assert reloaded(text)["input_ids"] == trained(text)["input_ids"], text
        assert reloaded.decode(reloaded(text)["input_ids"]) == text
    messages = [{"role": "user", "content": texts[0]}, {"role": "assistant", "content": texts[1]}]
    assert reloaded.apply_chat_template(messages, tokenize=False) == trained.apply_chat_template(messages, tokenize=False)


def test_model_card_describes_the_build(micro):
    card = json.loads((micro / "model_card.json").read_text())
    assert card["params"] > 0 and card["vocab"] >= 259
    assert card["data"]["envs"] == ["textcraft"] and card["data"]["per_env"]["textcraft"]["episodes"] > 0
    assert card["data"]["tokens"] > card["data"]["trained_tokens"] > 0
    assert card["train"]["steps"] == resolve_spec("micro").max_steps
    assert card["spec"]["seed"] == 0 and card["build_minutes"] is not None
    assert not (micro / "init").exists() and (micro / "train_metrics.json").exists()


def test_build_is_deterministic_for_a_seed_and_cached(micro, tmp_path):
    again = build_tiny_model(tmp_path / "again", size="micro", seed=0, progress=False)
    assert digest(again / "model.safetensors") == digest(micro / "model.safetensors")
    assert digest(again / "tokenizer.json") == digest(micro / "tokenizer.json")
    other = build_tiny_model(tmp_path / "other", size="micro", seed=1, progress=False)
    assert digest(other / "model.safetensors") != digest(micro / "model.safetensors")
    stamp = (again / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(tmp_path / "again", size="micro", seed=0, progress=False) == again
    assert (again / "model.safetensors").stat().st_mtime_ns == stamp, "cached: not rebuilt"


def test_spec_key_changes_with_what_determines_the_build():
    assert resolve_spec("micro").key() == resolve_spec("micro", minutes=9).key()
    assert resolve_spec("micro").key() != resolve_spec("micro", seed=1).key()
    assert resolve_spec("tiny").key().startswith("tiny-")
    with pytest.raises(ValueError, match="size"):
        resolve_spec("huge")


def test_cli_builds_and_greedy_evaluation_runs(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["build", "--size", "micro", "--out", str(out), "--no-eval", "--threads", "1"]) == 0
    assert str(out) in capsys.readouterr().out
    assert main(["eval", str(out), "--envs", "textcraft", "--tasks", "2", "--max-turns", "2", "--threads", "1"]) == 0
    result = json.loads((out / "model_card.json").read_text())["test_scores"]["textcraft"]
    assert result["tasks"] == 2 and 0 <= result["success"] <= 100 and 1 <= result["mean_turns"] <= 2


def test_chat_template_has_generation_markers():
    assert "{% generation %}" in CHAT_TEMPLATE and "system" not in CHAT_TEMPLATE


def test_measured_scores_land_in_the_model_card(micro, tmp_path):
    import shutil

    from agentr_lib.build.score import measure_test_scores

    model = tmp_path / "m"
    shutil.copytree(micro, model)
    scores = measure_test_scores(model, envs=["textcraft"], n_tasks=2, max_turns=1, progress=False, threads=1)
    card = json.loads((model / "model_card.json").read_text())
    assert card["test_scores"]["textcraft"] == scores["textcraft"]
    assert scores["textcraft"]["tasks"] == 2 and scores["textcraft"]["evaluator"].startswith("agentr_lib.evaluate")
    assert 0 <= scores["textcraft"]["success"] <= 100
    assert (model / "eval" / "textcraft.jsonl").exists()


def test_two_bc_stages_use_new_distractor_seeds_and_continue_training(tmp_path, monkeypatch):
    from agentr_lib.build import bc

    collected, real = [], bc.collect_demos
    monkeypatch.setattr(bc, "collect_demos", lambda spec, **k: collected.append(k.get("stage", 0)) or real(spec, **k))
    out = build_tiny_model(tmp_path / "s2", size="micro", seed=0, stages=2, textcraft_seeds=1, progress=False)
    assert collected == [0, 1], "each stage's demonstrations collected once (stage 0's also train the tokenizer)"
    card = json.loads((out / "model_card.json").read_text())
    assert card["train"]["stages"] == 2 and card["train"]["steps"] == 2 * resolve_spec("micro").max_steps
    assert card["data"]["per_env"]["textcraft"]["seeds"] == 2
    stages = json.loads((out / "train_metrics.json").read_text())["stages"]
    assert [s["init_from"] for s in stages] == ["scratch", "previous"]
    assert stages[1]["base_model"].endswith("bc0/merged") and not (out / "bc0").exists()


def _kill_at_optimizer_step(monkeypatch, step: int) -> None:
    """Make the build's `step`-th optimizer step (counted over all stages) raise, as a kill would."""
    real, taken = torch.optim.AdamW.step, []

    def step_or_die(self, *args, **kwargs):
        taken.append(1)
        if len(taken) == step:
            raise KeyboardInterrupt("killed mid-stage")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step_or_die)


def test_a_build_killed_mid_stage_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Issue 32's larger builds run ~30 min a stage: a build killed in its second stage keeps
    the finished first stage, reruns the second from it, and ends with the weights of a build
    never killed (byte for byte)."""
    from agentr_lib.build import bc

    two = dict(size="micro", seed=0, stages=2, progress=False, evaluate=False)
    whole = build_tiny_model(tmp_path / "whole", **two)
    out = tmp_path / "killed"
    steps = resolve_spec("micro").max_steps
    with monkeypatch.context() as patch:
        _kill_at_optimizer_step(patch, steps + 2)  # stage 1, its second step
        with pytest.raises(KeyboardInterrupt):
            build_tiny_model(out, **two)
    assert not out.exists() and (tmp_path / ".killed.building" / "bc0" / "stage.json").is_file()
    ran, real = [], bc.bc_stage
    monkeypatch.setattr(bc, "bc_stage", lambda spec, stage, *a, **k: ran.append(stage) or real(spec, stage, *a, **k))
    again = build_tiny_model(out, **two)
    assert ran == [1], "stage 0 reused, stage 1 run again from stage 0's weights"
    for name in ("model.safetensors", "tokenizer.json"):
        assert digest(again / name) == digest(whole / name), name
    card = json.loads((again / "model_card.json").read_text())
    assert card["resumed"] == {"stages_reused": [0]} and card["train"]["steps"] == 2 * steps
    assert card["data"] == json.loads((whole / "model_card.json").read_text())["data"]
    assert not (tmp_path / ".killed.building").exists()


def test_a_stage_killed_after_a_checkpoint_continues_from_it_to_the_same_weights(tmp_path, monkeypatch):
    """Inside a stage the SFT loop's checkpoint is the resume point: killed at step 3 with a
    checkpoint every 2 steps, the stage runs steps 3-4 only and ends byte-identical."""
    from agentr_lib.build import bc

    monkeypatch.setattr(bc, "CHECKPOINT_EVERY", 2)
    one = dict(size="micro", seed=0, progress=False, evaluate=False)
    whole = build_tiny_model(tmp_path / "whole", **one)
    out = tmp_path / "killed"
    with monkeypatch.context() as patch:
        _kill_at_optimizer_step(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            build_tiny_model(out, **one)
    assert (tmp_path / ".killed.building" / "bc0" / "checkpoint.pt").is_file()
    real, taken = torch.optim.AdamW.step, []
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: taken.append(1) or real(self, *a, **k))
    again = build_tiny_model(out, **one)
    assert len(taken) == resolve_spec("micro").max_steps - 2, "steps 1-2 came from the checkpoint"
    assert digest(again / "model.safetensors") == digest(whole / "model.safetensors")
    curves = [json.loads((model / "train_metrics.json").read_text())["stages"][0]["curve"] for model in (again, whole)]
    resumed, uninterrupted = ([(c["step"], c["loss"], c["tokens_seen"]) for c in curve] for curve in curves)
    assert resumed == uninterrupted, "the loss curve and token counts carried over the kill"


def test_an_interrupted_build_of_another_spec_is_not_resumed(tmp_path, monkeypatch):
    """The workspace records what the build depends on: resumed with another thread count (other
    float rounding) or spec, the build starts over rather than mix two builds' stages."""
    from agentr_lib.build import bc

    out = tmp_path / "m"
    with monkeypatch.context() as patch:
        _kill_at_optimizer_step(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            build_tiny_model(out, size="micro", seed=0, progress=False, evaluate=False, threads=2)
    ran, real = [], bc._initial_model
    monkeypatch.setattr(bc, "_initial_model", lambda *a: ran.append(1) or real(*a))
    with pytest.warns(UserWarning, match="starting over"):
        build_tiny_model(out, size="micro", seed=0, progress=False, evaluate=False, threads=1)
    assert ran == [1] and json.loads((out / "model_card.json").read_text())["spec"]["threads"] == 1


def test_companion_share_mixes_another_goal_into_some_recipe_lists():
    from agentr_lib.build.demos import collect_demos

    def goal_lines(share):
        rows, _ = collect_demos(resolve_spec("micro", max_train_tasks=20, textcraft_companion_share=share), progress=False)
        return [row["messages"][2]["content"] for row in sorted(rows, key=lambda r: r["task_id"])]

    plain, again, mixed = goal_lines(0.0), goal_lines(0.0), goal_lines(1.0)
    assert plain == again  # deterministic
    longer = [len(m.splitlines()) > len(p.splitlines()) for p, m in zip(plain, mixed)]
    assert sum(longer) >= 15  # nearly every list grew by another goal's tree
    assert [p.splitlines()[-1] for p in plain] == [m.splitlines()[-1] for m in mixed]  # same goals


def test_a_cached_build_without_scores_is_scored_on_load(micro, tmp_path):
    """A build interrupted while scoring leaves a card without test scores: loading it again
    finishes the scoring instead of returning a model with no measured quality."""
    import shutil

    model = tmp_path / "interrupted"
    shutil.copytree(micro, model)
    stamp = (model / "model.safetensors").stat().st_mtime_ns
    again = build_tiny_model(model, size="micro", seed=0, progress=False, eval_tasks=2, eval_max_turns=1, threads=1)
    card = json.loads((again / "model_card.json").read_text())
    assert card["test_scores"]["textcraft"]["tasks"] == 2
    assert (model / "model.safetensors").stat().st_mtime_ns == stamp, "loaded, not rebuilt"


def test_a_build_cut_short_by_the_time_cap_fails_and_caches_nothing(tmp_path):
    """Regression: on a loaded machine the 20-minute guard stopped BC at step 185 of 722 and
    the 0%-success model was cached for good. The cap is opt-in and fails loudly."""
    out = tmp_path / "capped"
    with pytest.raises(BuildCutShort, match="nothing was cached"):
        build_tiny_model(out, size="micro", seed=0, progress=False, minutes=1e-7)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "no half-built folder left behind"
    assert resolve_spec("tiny").minutes is None, "the default build has no time cap"


def test_a_cached_model_that_was_cut_short_is_rebuilt(micro, tmp_path):
    import shutil

    model = tmp_path / "old-cut"
    shutil.copytree(micro, model)
    card = json.loads((model / "model_card.json").read_text())
    card["train"]["stopped_by_time_limit"] = True
    (model / "model_card.json").write_text(json.dumps(card))
    (model / "model.safetensors").write_bytes(b"not the real weights")
    with pytest.warns(UserWarning, match="cut short"):
        again = build_tiny_model(model, size="micro", seed=0, progress=False)
    assert digest(again / "model.safetensors") == digest(micro / "model.safetensors")
    assert not json.loads((again / "model_card.json").read_text())["train"]["stopped_by_time_limit"]


def test_the_phrase_book_teaches_the_revision_words_but_never_the_revision_turn():
    from agentr_lib.agent import REVISION_ACTION, parse_action
    from agentr_lib.prompts import REVISION_SIGNALS
    from agentr_lib.build.demos import collect_demos, phrase_book

    book = phrase_book(3)
    assert len(book) == 3 * len(REVISION_SIGNALS)
    said = [row["messages"][-1]["content"] for row in book]
    assert all(any(reply.startswith(signal) for reply in said) for signal in REVISION_SIGNALS)
    assert all(REVISION_ACTION in reply for reply in said)
    for row in book:  # no task, no turn the agent would take in an episode
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert all("Thought:" not in m["content"] and parse_action(m["content"]) is None for m in row["messages"])
    rows, stats = collect_demos(resolve_spec("micro", max_train_tasks=4, phrase_book_repeats=2), progress=False)
    assert sum(row["env"] == "phrase_book" for row in rows) == 2 * len(REVISION_SIGNALS) == stats["phrase_book"]["episodes"]
    assert resolve_spec("micro").phrase_book_repeats == 0 and resolve_spec("tiny").phrase_book_repeats > 0
    rows, stats = collect_demos(resolve_spec("micro", max_train_tasks=4), progress=False)
    assert not any(row["env"] == "phrase_book" for row in rows) and "phrase_book" not in stats


def test_the_shipped_models_are_what_the_code_would_build():
    """The CPU default's model and the rehearsal's ship in git (a fresh clone spends its minutes
    on the loop, CI on the tests, not on rebuilds). Each must be the build of today's spec:
    change a spec and this fails until `python -m agentr_lib.build build --size <size> --force` is
    rerun and its folder committed."""
    import subprocess
    from dataclasses import asdict

    from agentr_lib.models import MODELS_DIR, ROOT, SHIPPED_MODELS, model_dir_for

    tracked = subprocess.run(["git", "ls-files", str(MODELS_DIR.relative_to(ROOT))], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    folders = sorted({Path(name).parts[2] for name in tracked})
    expected = {size: model_dir_for(resolve_spec(size)) for size in SHIPPED_MODELS}
    assert folders == sorted(path.name for path in expected.values()), f"shipped {folders}, the code builds {expected}"
    for size, folder in expected.items():
        card = json.loads((folder / "model_card.json").read_text())
        assert card["spec"] == json.loads(json.dumps(asdict(resolve_spec(size)))), size
        assert not card["train"]["stopped_by_time_limit"], size
        assert {"config.json", "model.safetensors", "tokenizer.json", "model_card.json"} <= {
            Path(name).name for name in tracked if Path(name).parts[2] == folder.name}, size
    from agentr_lib.profiles import load_profile

    for size in {"tiny", load_profile("tiny")["model"]}:  # tiny-scaled's model and the CPU default's
        card = json.loads((expected[size] / "model_card.json").read_text())
        assert card["test_scores"]["textcraft"]["tasks"] == 100, f"{size} shipped with its measured quality"
    assert not any("/eval/" in name for name in tracked), "its scoring episodes stay local"


def test_the_judge_book_answers_the_verifier_prompt_good_for_the_expert_and_bad_for_no_action():
    """micro-fluent's judgment lines (issue 17: the rehearsal's verdicts were all unparsed)."""
    from agentr_lib.agent import NO_ACTION_OBSERVATION, expert_trajectory
    from agentr_lib.envs import make_env
    from agentr_lib.prompts import VERIFIER_SYSTEM, judgment_in
    from agentr_lib.build.demos import judge_book

    env = make_env("textcraft")
    try:
        task_id = env.task_ids("train")[0]
        steps = expert_trajectory(env, task_id).steps
        rows = judge_book(env, task_id, repeats=2, steps=2)
    finally:
        env.close()
    assert len(rows) == 2 * 2 * min(2, len(steps))  # (Good, Bad) x steps x repeats
    for row in rows:
        prompt, reply = row["messages"]
        assert prompt["content"].startswith(VERIFIER_SYSTEM) and not prompt["loss"] and reply["loss"]
        judged = prompt["content"].split("## Step to judge")[1]
        expected = "Bad" if NO_ACTION_OBSERVATION in judged else "Good"
        assert judgment_in(reply["content"]) == expected
    assert {judgment_in(row["messages"][1]["content"]) for row in rows} == {"Good", "Bad"}
    assert steps[0].action in rows[0]["messages"][0]["content"].split("## Step to judge")[1]


def test_micro_fluent_demonstrations_reply_with_the_action_line_alone_and_carry_the_judge_book():
    from agentr_lib.agent import opening_messages, parse_action
    from agentr_lib.models import EMBEDDED_MODELS
    from agentr_lib.build.demos import collect_demos
    from agentr_lib.models import SIZES

    assert EMBEDDED_MODELS == tuple(SIZES)
    spec = resolve_spec("micro-fluent", max_train_tasks=1, envs=("textcraft",), textcraft_seeds=1)
    rows, stats = collect_demos(spec, progress=False)
    demos = [row for row in rows if row["env"] == "textcraft"]
    opening = len(opening_messages("instruction", "observation"))  # the instruction's "Ok." comes first
    replies = [m["content"] for row in demos for m in row["messages"][opening:] if m["role"] == "assistant"]
    assert replies and all(reply.startswith("Action: ") and "Thought" not in reply for reply in replies)
    assert all(parse_action(reply) == reply.removeprefix("Action: ") for reply in replies)
    assert stats["judge_book"]["episodes"] == sum(row["env"] == "judge_book" for row in rows) > 0
    # tiny keeps the expert's thoughts and judges nothing
    assert resolve_spec("tiny").thoughts and resolve_spec("tiny").judge_book_repeats == 0


@pytest.mark.slow
def test_a_build_gives_the_same_weights_whatever_the_process_environment(tmp_path):
    """Separate processes, other string hashing (PYTHONHASHSEED), another MKL_NUM_THREADS and
    OMP_NUM_THREADS, another working directory: the same weights' bytes. Before the build pinned
    MKL's thread count (build.__main__.pin_math_threads), MKL_NUM_THREADS=1 gave other weights at
    threads 2 (micro: 27237bf6... vs cf983342...; docs/embedded-model.md#determinism)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    variants = {"plain": {"PYTHONHASHSEED": "0"},
                "other": {"PYTHONHASHSEED": "1", "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}}
    hashes = {}
    for name, extra in variants.items():
        env = {k: v for k, v in os.environ.items() if k not in ("MKL_NUM_THREADS", "OMP_NUM_THREADS")}
        env.update(extra, PYTHONPATH=str(root))
        subprocess.run([sys.executable, "-m", "agentr_lib.build", "build", "--size", "micro", "--no-eval", "--force",
                        "--out", str(tmp_path / name)], cwd=tmp_path, env=env, check=True, capture_output=True)
        hashes[name] = digest(tmp_path / name / "model.safetensors")
    assert hashes["plain"] == hashes["other"]
    assert digest(tmp_path / "plain" / "tokenizer.json") == digest(tmp_path / "other" / "tokenizer.json")
