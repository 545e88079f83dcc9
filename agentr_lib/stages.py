"""The four stages of one Agent-R iteration, one typed function each: `search` (Phase I, notebook
01), `revise` (revision trajectories, notebook 02), `train` (Phase II, notebook 03) and `evaluate`
(notebook 04). Each takes its stage's config object and a few arguments naming its inputs and
its output folder, writes what the step writes (the files the next step and the figures read)
and returns what was made, so a notebook is a view: its parameters, one call, then the tables
and plots that explain the step; a script calls the same function.

Nothing heavy is imported here at import time: `train` must import unsloth (on a GPU) before
anything imports transformers.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .envs import make_env, per_env
from .evaluate import EvalConfig, evaluate_suite
from .io import atomic_write_json, read_json
from .layout import model_path
from .llm import Policy, load_policy
from .mcts import MCTSConfig, SearchResult, Tree, load_trees, search_trees, tree_rows
from .revision import RevisionSettings, build_dataset, counts, save_dataset, verdict_counts
from .splits import select_tasks
from .train import SFTConfig, select_backend, train_sft


@dataclass(frozen=True)
class PolicySpec:
    """Which model samples and through which backend: the profile's `model` (an embedded
    model's name, a model folder or a hub name; the pipeline passes the previous iteration's),
    `backend` and `llm.endpoints` (the served backend's running servers)."""

    model: str
    backend: str = "auto"
    endpoints: Sequence[str] = ()

    def load(self, doing: str) -> tuple[Policy, dict[str, Any]]:
        """The loaded policy and its sampler record ({backend, adapter}: what a summary names),
        with one line saying what samples for what (`doing`)."""
        policy = load_policy(self.backend, model_path(self.model), endpoints=list(self.endpoints))
        sampler = {"backend": policy.backend_name, "adapter": getattr(policy, "adapter", None)}  # adapter: base + LoRA
        print(f"{doing} {self.model} ({self.backend}: {policy.backend_name}"
              + (", a LoRA adapter on its base model)" if sampler["adapter"] else ")"))
        return policy, sampler


# --------------------------------------------------------------------------------------
# Phase I: search (notebook 01)
# --------------------------------------------------------------------------------------


@dataclass
class Searched:
    """What `search` made: each env's SearchResult (its trees), one row per tree (`tree_rows`),
    the per-env summary table (indexed by env) and the summary file written."""

    results: dict[str, SearchResult]
    per_tree: Any  # pandas.DataFrame
    summary: Any  # pandas.DataFrame
    path: Path

    def trees(self) -> list[Tree]:
        return [tree for result in self.results.values() for tree in result.trees]


def search(config: MCTSConfig, policy: PolicySpec, envs: Sequence[str], out_dir: str | Path, *,
           tasks_per_env: int | Mapping[str, int], task_split: str = "train", iteration: int = 1) -> Searched:
    """One search tree per task of each env: a seeded sample of `tasks_per_env` goals of
    `task_split` (`config.seed` draws it, as it breaks the UCT ties), searched with `policy`.
    Trees go to `out_dir/trees` (a rerun loads the finished ones), the per-env summary (with
    the sampler and the config) to `out_dir/summary.json`."""
    import pandas as pd

    sampling, sampler = policy.load(f"iteration {iteration}: sampling with")
    results, rows = {}, []
    for env_name in envs:
        task_ids = select_tasks(env_name, task_split, per_env(tasks_per_env, env_name), config.seed)
        result = search_trees(sampling, lambda: make_env(env_name), task_ids, config, out_dir=Path(out_dir) / "trees",
                              env_name=env_name)
        results[env_name] = result
        rows += tree_rows(result.trees)
        print(f"{env_name}: searched {len(result.searched)}, resumed {len(result.loaded)}, "
              f"re-searched corrupt files {len(result.corrupt)}, {result.model_calls} model calls, "
              f"{result.env_steps} env steps in {result.seconds:.0f} s")
    per_tree = pd.DataFrame(rows)
    summary = per_tree.groupby("env").agg(
        trees=("task_id", "count"), leaves=("leaves", "sum"), success_leaves=("success_leaves", "sum"),
        trees_with_success=("success_leaves", lambda s: int((s > 0).sum())), mean_best=("best_score", "mean"),
        env_steps=("env_steps", "sum"), seconds=("seconds", "sum"),
    )
    summary["model_calls"] = [results[env].model_calls for env in summary.index]
    path = atomic_write_json(Path(out_dir) / "summary.json", {
        "iteration": iteration, "model": policy.model, "sampler": sampler, "config": dict(vars(config)),
        "per_env": summary.reset_index().to_dict(orient="records"),
    })
    return Searched(results, per_tree, summary, path)


# --------------------------------------------------------------------------------------
# Revision trajectories (notebook 02)
# --------------------------------------------------------------------------------------


@dataclass
class Revised:
    """What `revise` made: the trees it read, the dataset it saved (a `datasets.Dataset`), the
    verifier's policy when the model verifier ran (else None) and the summary written."""

    trees: list[Tree]
    dataset: Any
    verifier: Policy | None
    summary: dict[str, Any]
    path: Path


def revise(settings: RevisionSettings, trees_dir: str | Path, out_dir: str | Path, *, envs: Sequence[str],
           verifier: PolicySpec | None = None, replay_check: bool = True, iteration: int = 1) -> Revised:
    """The training rows of this iteration's trees of `envs` (a shared search holds every env's
    trees): good paths and spliced revision trajectories (`revision.build_dataset`; the model
    verifier, the actor `verifier`, is loaded only when `settings` asks for it). With
    `replay_check` each splice is replayed in its env. Writes `out_dir/dataset` and
    `out_dir/summary.json` (counts, replay consistency, t' per env, the verifier's verdicts)."""
    trees = [tree for tree in load_trees(trees_dir) if tree.env in envs]
    tree_envs = sorted({tree.env for tree in trees})
    print(f"{len(trees)} trees from {trees_dir} ({', '.join(tree_envs)}); method {settings.method}, "
          f"alpha {settings.alpha}, beta {settings.beta}")
    policy, sampler = None, None
    if settings.verifier == "model" and settings.method == "agent_r":
        if verifier is None:
            raise ValueError("revise: the model verifier needs the actor (verifier=PolicySpec(...))")
        policy, sampler = verifier.load("the model verifier:")
    # every environment's trees at once: the model verifier judges all pairs' steps in one call
    tally: dict[str, int] = {}  # pairs sampled, and those dropped: no failure visible (value-seen), inconsistent replay
    dataset = build_dataset(trees, settings, policy=policy, replay_env_factory=make_env if replay_check else None,
                            tally=tally)
    if tally["unseen"]:
        print(f"verifier value-seen: {tally['unseen']} of {tally['pairs']} pairs show no failure on their bad path: "
              "no row")
    save_dataset(dataset, Path(out_dir) / "dataset")
    spliced = [(env, t_prime) for env, kind, t_prime in zip(dataset["env"], dataset["kind"], dataset["t_prime"])
               if kind != "good"]
    table = counts(dataset)
    summary = {
        "iteration": iteration, "method": settings.method, "alpha": settings.alpha, "beta": settings.beta,
        "verifier": settings.verifier, "trees": len(trees), "rows": len(dataset), "pairs": tally,
        "counts": [{key: row[key] for key in ("env", "revision", "good", "direct")} for row in table],
        "consistency": {row["env"]: {"checked": row["checked"], "consistent": row["consistent"]} for row in table},
        "t_prime": {env: [int(t) for row_env, t in spliced if row_env == env] for env in tree_envs},
        "verifier_verdicts": verdict_counts(dataset),  # judged steps: Good, Bad, Uncertain, unparsed, their share
        "verifier_sampler": sampler,
    }
    return Revised(trees, dataset, policy, summary, atomic_write_json(Path(out_dir) / "summary.json", summary))


# --------------------------------------------------------------------------------------
# Phase II: fine-tuning (notebook 03)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingData:
    """The rows a fine-tuning trains on: notebook 02's dataset folder, the rows of `envs` (one
    env: a single-task model), with a local file of general chat data mixed in at share `eta`
    when `general_data` is set (the profile's sft.general_data, sft.eta)."""

    dataset_dir: str | Path
    envs: Sequence[str]
    general_data: str = ""
    eta: float = 0.2

    def load(self, seed: int) -> Any:
        """The `datasets.Dataset` to train on (the general rows drawn with `seed`)."""
        from .data import filter_env, mix_general
        from .revision import load_dataset

        dataset = filter_env(load_dataset(self.dataset_dir), list(self.envs))
        return mix_general(dataset, self.general_data, eta=self.eta, seed=seed) if self.general_data else dataset


def trained_by_launch(init_model: str, out_dir: str | Path, config: Any) -> dict | None:
    """The metrics of an SFT that agentr_lib.train_cli ran into `out_dir` from `init_model` with
    `config` under `accelerate launch` (on several processes), so notebook 03 loads it instead
    of training again on one; None when no multi-process training is recorded there (the notebook then
    trains as always). train_metrics.json is written last (after the model), so its presence
    certifies the model. One with other settings raises, naming the file and what differs."""
    path = Path(out_dir) / "train_metrics.json"
    if not path.exists():
        return None
    metrics = read_json(path)
    if int(metrics.get("processes") or 1) <= 1:
        return None
    wanted = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items() if k != "progress"}
    found = {k: v for k, v in (metrics.get("config") or {}).items() if k != "progress"}
    changed = {k: (found.get(k), v) for k, v in wanted.items() if found.get(k) != v}
    if str(metrics.get("base_model")) != str(init_model):
        changed["init_model"] = (metrics.get("base_model"), str(init_model))
    if metrics.get("steps") == 0:  # carried over (no training rows): no config was recorded
        changed = {k: v for k, v in changed.items() if k == "init_model"}
    if changed:
        raise ValueError(f"{path}: an SFT with other settings is already there {changed} (found, wanted); "
                         "delete the folder to train again")
    if not Path(metrics["outputs"]["model"]).exists():
        raise ValueError(f"{path}: names the model {metrics['outputs']['model']}, which is missing; delete the "
                         "folder to train again")
    return metrics


@dataclass
class Trained:
    """What `train` made: the training metrics (train_metrics.json; `outputs.model` is the model
    the next iteration samples), the rows trained on and the backend that trained them."""

    metrics: dict[str, Any]
    dataset: Any
    backend: str


def train(config: SFTConfig, init_model: str, data: TrainingData, out_dir: str | Path,
          backend: str = "auto") -> Trained:
    """Fine-tune `init_model` (an embedded model's name, a model folder or a LoRA adapter
    folder) on `data` with `config`; `backend` auto picks unsloth on a CUDA GPU with the
    package, else hf. Writes adapter/ or merged/ and train_metrics.json under `out_dir`; an SFT
    that `accelerate launch` already ran into `out_dir` on several processes is loaded instead."""
    name, reason = select_backend(backend)
    print(f"backend: {name} ({reason})")
    if name == "unsloth":
        import unsloth  # noqa: F401  -- must come before transformers/peft to patch them
    import psutil
    import torch

    init = model_path(init_model)
    dataset = data.load(config.seed)
    if not data.general_data:
        print("no general chat data mixed in (none ships; point sft.general_data, GENERAL_DATA in notebook 03, "
              "at a local file to mix it in at share eta)")
    kind_column = next((c for c in ("kind", "source") if c in dataset.column_names), None)
    kinds = Counter(dataset[kind_column] if kind_column else ["?"] * len(dataset))
    print(f"{len(dataset)} training conversations from {data.dataset_dir}: "
          + ", ".join(f"{count} {kind}" for kind, count in kinds.most_common()))
    if len(dataset) == 0:
        print(f"{data.dataset_dir}: no training rows for {list(data.envs)} (the search found no good leaf): "
              "the model is carried over")
    memory_before = torch.cuda.memory_allocated() if torch.cuda.is_available() else psutil.Process().memory_info().rss
    start = time.perf_counter()
    metrics = trained_by_launch(init, out_dir, config) or train_sft(init, dataset, out_dir, config, backend=name)
    wall = time.perf_counter() - start
    if metrics["steps"]:
        print(f"trained {metrics['steps']} steps: {metrics['tokens_seen']:,} tokens seen, "
              f"{metrics['tokens_trained']:,} of them trained ({metrics['masked_fraction']:.1%} of the data is masked "
              f"context), in {metrics['seconds']:.1f} s of training ({metrics['tokens_per_s']:,.0f} tokens seen/s); "
              f"{wall:.0f} s with loading and saving")
    else:
        print(f"no training step: {metrics.get('note', '')}")
    if torch.cuda.is_available():
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GB")
    else:
        print(f"process memory {memory_before / 2**30:.2f} -> {psutil.Process().memory_info().rss / 2**30:.2f} GB")
    return Trained(metrics, dataset, name)


# --------------------------------------------------------------------------------------
# Evaluation (notebook 04)
# --------------------------------------------------------------------------------------


@dataclass
class Evaluated:
    """What `evaluate` measured: the test metrics summarised over envs (per env + average),
    the revision-ability metrics (None without prefixes) and the sampler record written to
    sampler.json (backend, adapter, model_id, calls, generated and truncated counts)."""

    metrics: dict[str, Any]
    revision: dict[str, Any] | None
    sampler: dict[str, Any]


def evaluate(config: EvalConfig, policy: PolicySpec, envs: Sequence[str], out_dir: str | Path, *, seed: int = 0,
             prefixes_dir: str | Path | None = None, make_prefixes: bool = False) -> Evaluated:
    """`policy` on each env's seeded sample of `config.split` (`evaluate.evaluate_suite`), then,
    with `prefixes_dir`, the revision-ability protocol (the base model's run, `make_prefixes`,
    samples the fixed erroneous prefixes first). Writes the episodes and metrics under
    `out_dir` (a rerun resumes) and `out_dir/sampler.json`."""
    sampling, sampler = policy.load("evaluating")
    result = evaluate_suite(sampling, list(envs), out_dir, config, seed=seed, prefixes_dir=prefixes_dir or None,
                            make_prefixes=make_prefixes)
    sampler.update({name: getattr(sampling, name, None) for name in ("model_id", "calls", "generated_tokens",
                                                                      "truncated_prompts")})  # truncated: to the budget
    atomic_write_json(Path(out_dir) / "sampler.json", sampler)
    return Evaluated(result["metrics"], result["revision"], sampler)
