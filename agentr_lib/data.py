"""Conversations -> token ids + per-turn loss masks, general-data mixing, one env's rows.

Why we tokenize ourselves: revision trajectories need loss on *some* assistant turns only
(the bad segment is context, the revision signal and the good continuation are trained).
Neither TRL's `assistant_only_loss` nor Unsloth's `train_on_responses_only` can express that,
so we render the model's own chat template on growing prefixes of the conversation, find
each message's character span, map it to tokens through the offsets of one tokenization of
the full text, and hand the trainer `input_ids` + `labels`.

Decisions (tested in tests/test_data.py):
- Trained: an assistant turn's content and its end-of-turn token (`<|im_end|>` for ChatML),
  when the message's `loss` flag is true (a missing flag means True for assistant turns).
- Not trained: the `<|im_start|>assistant\\n` header (the generation prompt), the newline the
  template writes after `<|im_end|>` (the model stops at `<|im_end|>` and never generates it),
  every user/system token.
- Truncation mirrors inference (`conversation.truncate_messages`): a conversation longer than
  `max_seq_length` loses its oldest (assistant, observation) pairs after the first
  observation, keeping the instruction, the task and the latest turns -- what the model saw
  when it acted. Revision rows are the longest by construction and their oldest turns are the
  masked bad segment, so cutting the tail instead would drop the revision signal and the good
  continuation first. Only when the opening turns plus the last pair alone do not fit is the
  tail cut. A row left with no trained token is dropped; `tokenize_dataset` counts rows kept,
  truncated and dropped per kind and raises when a kind is dropped entirely.
"""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100


class TemplateNotPrefixStable(ValueError):
    """The chat template renders a conversation prefix as something that is not a prefix of
    the longer conversation (e.g. templates that move the last turn or strip thoughts from
    earlier assistant turns); per-turn masks cannot be derived from growing prefixes."""


def _render(tokenizer: Any, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    if not clean and not add_generation_prompt:
        return ""
    return tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=add_generation_prompt)


def _end_of_turn_text(tokenizer: Any) -> str | None:
    """The template's end-of-turn string: `<|im_end|>` for ChatML/Qwen, else the eos token."""
    vocab = tokenizer.get_vocab()
    if "<|im_end|>" in vocab:
        return "<|im_end|>"
    if "<|eot_id|>" in vocab:
        return "<|eot_id|>"
    return tokenizer.eos_token


def trained_char_spans(tokenizer: Any, messages: Sequence[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the (start, end) character span of each trained assistant
    turn: from the end of the generation prompt (render of the earlier messages with
    add_generation_prompt=True) to the end of the first end-of-turn token in the turn.

    Only the renders a trained turn needs are made (2 per trained turn + the full text): the
    prefix property is asserted for each of them against the full render. Raises
    TemplateNotPrefixStable when it fails."""
    for index, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant", "system"):
            raise ValueError(f"message {index}: role {message.get('role')!r}; expected 'user', 'assistant' or 'system'")
    eot = _end_of_turn_text(tokenizer)
    full = _render(tokenizer, messages)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or not bool(message.get("loss", True)):
            continue
        header = _render(tokenizer, messages[:index], add_generation_prompt=True)
        current = _render(tokenizer, messages[: index + 1])
        if not (current.startswith(header) and full.startswith(current)):
            raise TemplateNotPrefixStable(
                f"chat template is not prefix-stable at message {index} (role 'assistant'): the renders of "
                f"messages[:{index}] + generation prompt, messages[:{index + 1}] and the whole conversation are "
                "not prefixes of each other; per-turn masks need a template that renders earlier turns "
                "identically (ChatML/Qwen2.5 do; templates that drop earlier thoughts do not)"
            )
        start, end = len(header), len(current)
        if eot:
            found = current.find(eot, start)
            if found != -1:
                end = found + len(eot)
        spans.append((start, end))
    return full, spans


def tokenize_conversation(tokenizer: Any, messages: Sequence[dict], max_seq_length: int | None = None) -> dict:
    """input_ids / attention_mask / labels for one conversation (see the module docstring).

    Longer than `max_seq_length`: the oldest turns after the first observation are dropped
    (`conversation.truncate_messages`, as at inference); if the rest still does not fit, the tail is
    cut. Returns also `num_tokens`, `num_trained`, `truncated` (bool), `messages_dropped`
    (messages removed after the first observation: two per turn) and `tail_cut` (bool). `num_trained` may be 0 (the
    caller drops such examples)."""
    example = _tokenize_full(tokenizer, messages)
    messages_dropped = 0
    if max_seq_length is not None and example["num_tokens"] > max_seq_length:
        from .conversation import truncate_messages

        def count_tokens(candidate: list[dict]) -> int:
            return len(tokenizer(_render(tokenizer, candidate), add_special_tokens=False)["input_ids"])

        kept = truncate_messages(list(messages), count_tokens, max_seq_length)
        messages_dropped = len(messages) - len(kept)
        if messages_dropped:
            example = _tokenize_full(tokenizer, kept)
    ids, labels = example["input_ids"], example["labels"]
    tail_cut = max_seq_length is not None and len(ids) > max_seq_length
    if tail_cut:
        ids, labels = ids[:max_seq_length], labels[:max_seq_length]
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": labels,
        "num_tokens": len(ids),
        "num_trained": sum(label != IGNORE_INDEX for label in labels),
        "truncated": bool(messages_dropped or tail_cut),
        "messages_dropped": messages_dropped,
        "tail_cut": tail_cut,
    }


def _tokenize_full(tokenizer: Any, messages: Sequence[dict]) -> dict:
    """input_ids + labels of the whole conversation, no length limit."""
    text, trained_spans = trained_char_spans(tokenizer, messages)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoding["input_ids"])
    offsets: list[tuple[int, int]] = [tuple(o) for o in encoding["offset_mapping"]]
    boundary_set = {0, len(text)}
    for start, end in trained_spans:
        boundary_set.update((start, end))
    boundaries = sorted(boundary_set)
    labels = [IGNORE_INDEX] * len(ids)
    span_index = 0
    for position, (token_start, token_end) in enumerate(offsets):
        following = bisect.bisect_right(boundaries, token_start)
        if following < len(boundaries) and boundaries[following] < token_end:
            boundary = boundaries[following]
            raise TemplateNotPrefixStable(
                f"token {position} ({tokenizer.convert_ids_to_tokens(ids[position])!r}) crosses a message/mask "
                f"boundary at character {boundary}: the tokenizer merges text across turns"
            )
        while span_index < len(trained_spans) and trained_spans[span_index][1] <= token_start:
            span_index += 1
        if span_index < len(trained_spans):
            start, end = trained_spans[span_index]
            if start <= token_start and token_end <= end and token_end > token_start:
                labels[position] = ids[position]
    return {"input_ids": ids, "labels": labels, "num_tokens": len(ids)}


class KindDropped(ValueError):
    """Every row of one kind (e.g. all revision rows) lost its trained tokens to truncation:
    training would silently become training on the other kinds only."""


@dataclass
class TokenizeStats:
    """What tokenize_dataset kept and dropped (reported in train_metrics.json).

    `per_kind[kind]`: rows in, kept (trained on), truncated (kept but shortened: oldest turns
    dropped and/or tail cut), dropped (no trained token left), trained_tokens. A row's kind is
    its `kind` column (revision / direct / good), else its `source` column (general), else "?"."""

    examples_in: int = 0
    examples_kept: int = 0
    dropped_no_trained_tokens: int = 0
    truncated: int = 0
    tail_cut: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    max_seq_length: int | None = None
    dropped_indices: list[int] = field(default_factory=list)
    per_kind: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def masked_fraction(self) -> float:
        return 1.0 - self.trained_tokens / self.tokens if self.tokens else 0.0

    def to_dict(self) -> dict:
        record = asdict(self)
        record["masked_fraction"] = self.masked_fraction
        record["dropped_indices"] = self.dropped_indices[:100]
        return record


def row_kind(row: dict) -> str:
    """revision / direct / good (the `kind` column), general (`source`), or "?"."""
    return str(row.get("kind") or row.get("source") or "?")


def tokenize_dataset(ds: Any, tokenizer: Any, max_seq_length: int | None = None, progress: bool = True,
                     allow_kind_dropped: bool = False):
    """Tokenize a dataset (or list of rows) with a `messages` column.

    Returns (datasets.Dataset with input_ids/attention_mask/labels/num_tokens/num_trained
    plus the source row index `source_index`, TokenizeStats). Examples whose truncation (or
    flags) leaves no trained token are dropped and counted per kind; raises KindDropped when
    every row of a kind is dropped (unless `allow_kind_dropped`)."""
    from datasets import Dataset
    from tqdm.auto import tqdm

    rows = ds if isinstance(ds, list) else None
    n = len(ds)
    stats = TokenizeStats(examples_in=n, max_seq_length=max_seq_length)
    out: dict[str, list] = {k: [] for k in ("input_ids", "attention_mask", "labels", "num_tokens", "num_trained", "source_index")}
    for index in tqdm(range(n), desc="tokenize", disable=not progress or n < 200):
        row = rows[index] if rows is not None else ds[index]
        if "messages" not in row:
            raise KeyError(f"row {index}: no 'messages' column; columns are {sorted(row)}")
        example = tokenize_conversation(tokenizer, row["messages"], max_seq_length)
        kind = stats.per_kind.setdefault(row_kind(row), {"rows": 0, "kept": 0, "truncated": 0, "dropped": 0,
                                                         "trained_tokens": 0})
        kind["rows"] += 1
        if example["num_trained"] == 0:
            stats.dropped_no_trained_tokens += 1
            stats.dropped_indices.append(index)
            kind["dropped"] += 1
            continue
        stats.truncated += example["truncated"]
        stats.tail_cut += example["tail_cut"]
        kind["kept"] += 1
        kind["truncated"] += example["truncated"]
        kind["trained_tokens"] += example["num_trained"]
        for key in out:
            out[key].append(index if key == "source_index" else example[key])
        stats.tokens += example["num_tokens"]
        stats.trained_tokens += example["num_trained"]
    stats.examples_kept = len(out["input_ids"])
    lost = sorted(name for name, kind in stats.per_kind.items() if kind["rows"] and not kind["kept"])
    if lost and not allow_kind_dropped:
        raise KindDropped(
            f"every {' and every '.join(lost)} row was dropped: no trained token fits max_seq_length="
            f"{max_seq_length} even with the oldest turns removed ({stats.per_kind}); raise max_seq_length "
            "(the instruction, the task and the last turn must fit)")
    return Dataset.from_dict(out), stats


# ---------------------------------------------------------------------------------------
# General chat data mixing


def load_chat_file(path: str | Path) -> list[dict]:
    """Rows of a local JSONL or parquet chat dataset with a `messages` column, normalised to
    {"messages": [{role, content, loss}]} (all assistant turns trained)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: general chat data file not found (JSONL or parquet with a 'messages' column)")
    if path.suffix == ".parquet":
        import pandas as pd

        records = pd.read_parquet(path).to_dict("records")
    elif path.suffix in (".jsonl", ".json"):
        from .io import read_jsonl

        records = read_jsonl(path)
    else:
        raise ValueError(f"{path}: unsupported suffix {path.suffix!r}; expected .jsonl or .parquet")
    rows = []
    for number, record in enumerate(records):
        if "messages" not in record:
            raise KeyError(f"{path}: row {number} has no 'messages' key; keys are {sorted(record)}")
        messages = []
        for message in list(record["messages"]):
            role, content = message["role"], message["content"]
            messages.append({"role": str(role), "content": str(content), "loss": role == "assistant"})
        rows.append({"messages": messages})
    return rows


def general_count(n_task: int, eta: float) -> int:
    """How many general rows to add to `n_task` task rows so that they make up a fraction
    `eta` of the final mix: round(eta * n_task / (1 - eta)). eta=0.2, 800 task rows -> 200
    general rows (20% of 1,000). This is the paper's "mixing ratio" reading: the share of
    general data in the training set."""
    if not 0.0 <= eta < 1.0:
        raise ValueError(f"eta={eta}: expected 0 <= eta < 1 (the general-data share of the final mix)")
    return int(round(eta * n_task / (1.0 - eta)))


def mix_general(ds: Any, general_path: str | Path | None, eta: float = 0.2, seed: int = 0):
    """Add general chat rows (sampled with `seed`, without replacement while they last, then
    with) so that they are a fraction `eta` of the result; shuffle the result with `seed`.

    Rows get a `source` column ("task" or "general"). With `general_path=None` the dataset
    is returned unchanged (none ships with the project). Returns a datasets.Dataset."""
    from datasets import Dataset

    task_rows = list(ds) if not isinstance(ds, list) else list(ds)
    if general_path is None:
        return ds if not isinstance(ds, list) else Dataset.from_list(task_rows)
    general = load_chat_file(general_path)
    if not general:
        raise ValueError(f"{general_path}: no rows")
    k = general_count(len(task_rows), eta)
    rng = random.Random(seed)
    order = list(range(len(general)))
    rng.shuffle(order)
    picked = [general[order[i % len(order)]] for i in range(k)]
    mixed = [{"messages": row["messages"], "source": "task"} for row in task_rows]
    mixed += [{"messages": row["messages"], "source": "general"} for row in picked]
    rng.shuffle(mixed)
    return Dataset.from_list(mixed)


# ---------------------------------------------------------------------------------------
# Multi-task vs single-task


def filter_env(ds: Any, env: str | Iterable[str]):
    """Rows whose `env` column is `env` (or in the given names): the single-task dataset."""
    names = {env} if isinstance(env, str) else set(env)
    if "env" not in ds.column_names:
        raise KeyError(f"dataset has no 'env' column; columns are {ds.column_names}")
    return ds.filter(lambda row: row["env"] in names)
