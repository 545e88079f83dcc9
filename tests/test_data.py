"""Per-turn loss masks on the tiny model's real ChatML template, truncation, mixing counts."""

from __future__ import annotations

import json

import pytest

from agentr_lib.agent import format_response, opening_messages
from agentr_lib.data import (
    IGNORE_INDEX,
    TemplateNotPrefixStable,
    general_count,
    filter_env,
    mix_general,
    tokenize_conversation,
    tokenize_dataset,
)
from agentr_lib.build.tokenizer import train_tokenizer

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def revision_trajectory() -> list[dict]:
    """Opening turns, a bad segment (no loss), the revision signal (loss), the good path (loss)."""
    messages = opening_messages("You craft items. Reply 'Thought: ...' then 'Action: ...'.",
                                "Crafting commands:\n1 oak log -> 4 oak planks\nGoal: craft 4 oak planks.")
    for m in messages:
        m["loss"] = m["role"] == "assistant"
    messages[1]["loss"] = False  # the "Ok." of a revision row is context
    messages += [
        {"role": "assistant", "content": format_response("I need birch.", "get 1 birch log"), "loss": False},
        {"role": "user", "content": "Could not find birch log."},
        {"role": "assistant", "content": format_response("Try again.", "get 2 birch log"), "loss": False},
        {"role": "user", "content": "Could not find birch log."},
        {"role": "assistant", "content": format_response("My approach was flawed. I need to revise it.", "wait")},
        {"role": "user", "content": "ok."},
        {"role": "assistant", "content": format_response("oak planks needs 1 oak log.", "get 1 oak log")},
        {"role": "user", "content": "Got 1 oak log"},
        {"role": "assistant", "content": format_response("Now craft.", "craft 4 oak planks using 1 oak log")},
    ]
    return messages


@pytest.fixture(scope="module")
def tokenizer():
    texts = [m["content"] for m in revision_trajectory()] * 4 + ["user\nassistant\n"] * 20
    return train_tokenizer(texts, 300)


def turn_token_spans(tokenizer, ids: list[int]) -> list[tuple[str, int, int]]:
    """Independent hand parse of the ChatML token stream: (role, first content token, index of
    its <|im_end|>) per turn, found by scanning the special-token ids."""
    start_id, end_id = tokenizer.convert_tokens_to_ids([IM_START, IM_END])
    spans, i = [], 0
    while i < len(ids):
        assert ids[i] == start_id, f"token {i} should open a turn"
        j = i + 1
        while tokenizer.decode(ids[i + 1:j]).rstrip("\n") == tokenizer.decode(ids[i + 1:j]):
            j += 1  # header runs through the role name and its newline
        role = tokenizer.decode(ids[i + 1:j]).strip()
        end = ids.index(end_id, j)
        spans.append((role, j, end))
        i = end + 2  # <|im_end|> then "\n"
    return spans


def test_revision_masks_on_the_real_chatml_template(tokenizer):
    messages = revision_trajectory()
    example = tokenize_conversation(tokenizer, messages)
    ids, labels = example["input_ids"], example["labels"]
    text = tokenizer.apply_chat_template([{k: m[k] for k in ("role", "content")} for m in messages], tokenize=False)
    assert tokenizer.decode(ids) == text
    spans = turn_token_spans(tokenizer, ids)
    assert [role for role, _, _ in spans] == [m["role"] for m in messages]
    for (role, first, end), message in zip(spans, messages):
        content = labels[first:end + 1]
        header = labels[first - 3:first]  # <|im_start|> + role tokens + "\n" (at least the last 3)
        assert all(label == IGNORE_INDEX for label in header), "the assistant header is never trained"
        if end + 1 < len(labels):
            assert labels[end + 1] == IGNORE_INDEX, "the newline after <|im_end|> is not trained"
        if role == "assistant" and message.get("loss", True):
            assert content == ids[first:end + 1], f"trained turn {message['content']!r} incl. <|im_end|>"
            assert tokenizer.decode(ids[first:end]) == message["content"]
        else:
            assert all(label == IGNORE_INDEX for label in content), f"{role} turn {message['content']!r} must be masked"
    trained_text = tokenizer.decode([i for i, l in zip(ids, labels) if l != IGNORE_INDEX])
    assert "birch" not in trained_text and "Could not" not in trained_text and "Goal" not in trained_text
    assert trained_text.count(IM_END) == 3
    assert example["num_trained"] == sum(l != IGNORE_INDEX for l in labels)


def test_missing_loss_flag_trains_assistant_turns_only(tokenizer):
    messages = [{k: m[k] for k in ("role", "content")} for m in revision_trajectory()]
    example = tokenize_conversation(tokenizer, messages)
    trained = tokenizer.decode([i for i, l in zip(example["input_ids"], example["labels"]) if l != IGNORE_INDEX])
    assert trained.startswith("Ok.") and "birch" in trained and "Could not" not in trained


def _trained_text(tokenizer, example) -> str:
    return tokenizer.decode([i for i, l in zip(example["input_ids"], example["labels"]) if l != IGNORE_INDEX])


def test_truncation_drops_the_oldest_turns_as_inference_does(tokenizer):
    """A long revision row loses its oldest turns after the first observation (the masked bad
    segment), not its tail: the revision signal and the good continuation stay trained, and
    the kept conversation is exactly what conversation.truncate_messages would show the model."""
    from agentr_lib.conversation import truncate_messages

    messages = revision_trajectory()
    full = tokenize_conversation(tokenizer, messages)
    without_first_pair = messages[:3] + messages[5:]
    budget = len(tokenize_conversation(tokenizer, without_first_pair)["input_ids"])
    assert budget < full["num_tokens"]
    cut = tokenize_conversation(tokenizer, messages, max_seq_length=budget)
    assert cut["truncated"] and cut["messages_dropped"] == 2 and not cut["tail_cut"]
    assert cut["input_ids"] == tokenize_conversation(tokenizer, without_first_pair)["input_ids"]
    count = lambda m: len(tokenize_conversation(tokenizer, m)["input_ids"])  # noqa: E731
    assert len(truncate_messages(messages, count, budget)) == len(messages) - 2
    assert cut["input_ids"][: 5] == full["input_ids"][: 5], "the instruction is kept"
    assert "Goal: craft 4 oak planks" in tokenizer.decode(cut["input_ids"]), "the task is kept"
    assert _trained_text(tokenizer, cut) == _trained_text(tokenizer, full), "every trained turn survives"
    assert "get 1 birch log" not in tokenizer.decode(cut["input_ids"]), "the oldest bad turn went first"
    assert cut["num_trained"] == full["num_trained"] and cut["num_tokens"] <= budget


def test_only_what_cannot_fit_is_tail_cut_and_untrained_rows_are_dropped(tokenizer):
    messages = revision_trajectory()
    minimal = messages[:3] + messages[-1:]  # the opening turns + the last (trained) turn
    minimal_tokens = tokenize_conversation(tokenizer, minimal)
    first_trained = next(i for i, l in enumerate(minimal_tokens["labels"]) if l != IGNORE_INDEX)
    cut = tokenize_conversation(tokenizer, messages, max_seq_length=first_trained + 5)
    assert cut["tail_cut"] and cut["messages_dropped"] == len(messages) - len(minimal)
    assert cut["input_ids"] == minimal_tokens["input_ids"][: first_trained + 5] and cut["num_trained"] == 5
    none = tokenize_conversation(tokenizer, messages, max_seq_length=first_trained)
    assert none["num_trained"] == 0
    short = tokenize_conversation(tokenizer, messages[:3])
    assert not short["truncated"] and not short["tail_cut"] and short["messages_dropped"] == 0


def test_rows_kept_truncated_and_dropped_are_counted_per_kind(tokenizer):
    messages = revision_trajectory()
    long_budget = tokenize_conversation(tokenizer, messages)["num_tokens"] - 1
    rows = [{"messages": messages, "kind": "revision"},
            {"messages": messages[:3] + messages[9:], "kind": "good"},  # fits
            {"messages": messages[:3], "kind": "good"},  # trains nothing ("Ok." has loss False)
            {"messages": messages[:3] + messages[-1:], "source": "general"}]
    ds, stats = tokenize_dataset(rows, tokenizer, max_seq_length=long_budget, progress=False)
    assert len(ds) == 3 and ds["source_index"] == [0, 1, 3]
    assert stats.dropped_no_trained_tokens == 1 and stats.dropped_indices == [2] and stats.truncated == 1
    assert stats.per_kind["revision"] == {"rows": 1, "kept": 1, "truncated": 1, "dropped": 0,
                                          "trained_tokens": ds["num_trained"][0]}
    assert {k: stats.per_kind["good"][k] for k in ("rows", "kept", "truncated", "dropped")} == \
        {"rows": 2, "kept": 1, "truncated": 0, "dropped": 1}
    assert stats.per_kind["general"]["kept"] == 1
    assert stats.to_dict()["per_kind"] == stats.per_kind
    assert max(len(x) for x in ds["input_ids"]) <= long_budget and 0 < stats.masked_fraction < 1


def test_a_kind_dropped_entirely_is_an_error(tokenizer):
    from agentr_lib.data import KindDropped

    messages = revision_trajectory()
    opening = tokenize_conversation(tokenizer, messages[:3])["num_tokens"]
    rows = [{"messages": messages, "kind": "revision"}, {"messages": messages[:3], "kind": "good"}]
    with pytest.raises(KindDropped, match="every good and every revision row was dropped"):
        tokenize_dataset(rows, tokenizer, max_seq_length=opening, progress=False)
    _, stats = tokenize_dataset(rows, tokenizer, max_seq_length=opening, progress=False, allow_kind_dropped=True)
    assert stats.per_kind["revision"]["dropped"] == 1 and stats.examples_kept == 0


def test_a_template_that_is_not_prefix_stable_raises_a_clear_error(tokenizer):
    class Moving:
        """Renders the conversation newest-first: prefixes are not prefixes."""

        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
            return "".join(f"[{m['role']}]{m['content']}" for m in reversed(messages))

        def get_vocab(self):
            return {}

        eos_token = None

    with pytest.raises(TemplateNotPrefixStable, match="not prefix-stable at message 7"):
        tokenize_conversation(Moving(), revision_trajectory())


def _chat_rows(n: int, tag: str) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"{tag} {i}"}, {"role": "assistant", "content": "x"}]}
            for i in range(n)]


@pytest.mark.parametrize("n_task,eta,expected", [(800, 0.2, 200), (100, 0.2, 25), (10, 0.0, 0), (3, 0.5, 3)])
def test_general_count_makes_eta_the_share_of_the_final_mix(n_task, eta, expected):
    assert general_count(n_task, eta) == expected


def test_mix_general_exact_counts_and_determinism(tmp_path):
    general = tmp_path / "general.jsonl"
    general.write_text("\n".join(json.dumps(row) for row in _chat_rows(30, "general")) + "\n")
    task = [dict(row, env="textcraft") for row in _chat_rows(80, "task")]
    mixed = mix_general(task, general, eta=0.2, seed=3)
    sources = mixed["source"]
    assert sources.count("task") == 80 and sources.count("general") == 20 and len(mixed) == 100
    general_texts = [row["messages"][0]["content"] for row in mixed if row["source"] == "general"]
    assert len(set(general_texts)) == 20, "sampled without replacement while rows last"
    assert mix_general(task, general, eta=0.2, seed=3)["messages"] == mixed["messages"]
    assert mix_general(task, general, eta=0.2, seed=4)["messages"] != mixed["messages"]
    more = mix_general(task * 2, general, eta=0.2, seed=0)  # 160 task -> 40 general from 30 rows
    assert more["source"].count("general") == 40
    assert mix_general(task, None, eta=0.2) is not None and len(mix_general(task, None)) == 80
    with pytest.raises(FileNotFoundError, match="general chat data"):
        mix_general(task, tmp_path / "missing.jsonl")


def test_single_task_rows():
    from datasets import Dataset

    rows = [dict(r, env=env) for env in ("webshop", "textcraft") for r in _chat_rows(3, env)]
    ds = Dataset.from_list(rows)
    assert set(filter_env(ds, "textcraft")["env"]) == {"textcraft"} and len(filter_env(ds, "textcraft")) == 3
    assert len(filter_env(ds, ["textcraft", "webshop"])) == 6
    with pytest.raises(KeyError, match="no 'env' column"):
        filter_env(Dataset.from_list([{"messages": []}]), "textcraft")
