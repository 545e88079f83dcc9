"""Where a run's files live: the one module that knows the layout of a run folder. The
pipeline writes by it, the results collector (and through it the figure and table
notebooks) reads by it, and tests build synthetic runs with it.

    data/runs/<run>/
      run.json                     manifest: profile, versions, commit, every step's status
      steps/<key>.json             a step's completion marker (pipeline.marker_path)
      setup/setup.json             notebook 00
      base/eval/                   the base model's evaluation (iteration 0) ...
      base/eval/error_prefixes/    ... and the erroneous prefixes every model continues from
      iter1-mcts/mcts/trees/       iteration 1's trees, searched once for every variant
      <variant>/iter<k>/mcts/      the variant's own search (iteration k > 1, or single-task)
      <variant>/iter<k>/revision/  dataset/ (and data.jsonl), summary.json
      <variant>/iter<k>/sft/       the model iteration k+1 samples with (adapter/ with LoRA, else
                                   merged/), train_metrics.json
      <variant>/iter<k>/eval/      <env>.jsonl, <env>.metrics.json, metrics.json, <env>.revision.*
      figures/                     the executed figure and table notebooks

A variant is a method trained on all the run's environments (named like the method) or,
with single-task training, on one (`<method>-<env>`). Each step's executed notebook lies in
the folder of its outputs. A notebook run by hand writes under `data/runs/manual/` (its
parameters cell says so); the figure notebooks read `data/runs/tiny/`, what
`make reproduce` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .models import EMBEDDED_MODELS, PRETRAINED_MODELS, model_dir_for, pretrained_dir, resolve_spec

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
RUNS = ROOT / "data" / "runs"
#: The run folder of notebooks run by hand (relative to the repository, as the cells write it).
HAND_RUN = Path("data") / "runs" / "manual"

#: The figure and table notebooks and the files each writes into the figures folder.
FIGURE_NOTEBOOKS: dict[str, list[str]] = {
    "10_figure3_training_trajectories": ["figure3_training_trajectories.png", "figure3_training_trajectories.pdf"],
    "11_figure4_loops": ["figure4_loops.png", "figure4_loops.pdf"],
    "12_figure5_revision_length": ["figure5_revision_length.png", "figure5_revision_length.pdf"],
    "13_figure6_training_methods": ["figure6_training_methods.png", "figure6_training_methods.pdf"],
    "14_tables": ["table1.md", "table2.md", "table3.md", "table6.md", "results.json"],
}


def figures_dir(profile_name: str) -> Path:
    """Where a profile's figures go by default (committed: figures/<profile>/)."""
    return ROOT / "figures" / profile_name


def model_path(model: str, seed: int = 0) -> str:
    """A model named by a profile or a parameters cell: an embedded model (`EMBEDDED_MODELS`) is
    its cache folder (built by notebook 00 with the run's seed); a pretrained one
    (`PRETRAINED_MODELS`) its folder (converted or warm-started on first use, by the registry's
    builder: layout imports none); anything else (a model folder,
    a hub name) is returned as given."""
    if model in EMBEDDED_MODELS:
        return str(model_dir_for(resolve_spec(model, seed=seed)))
    if model in PRETRAINED_MODELS:
        return str(pretrained_dir(model))
    return str(model)


def variants(profile: dict) -> list[tuple[str, str, list[str]]]:
    """(variant name, method, envs): one multi-task model per method, plus one per env and
    method when single-task training is on (Table 6 / Figure 6)."""
    out = [(method, method, list(profile["envs"])) for method in profile["methods"]]
    if profile["single_task"]:
        out += [(f"{method}-{env}", method, [env]) for method in profile["methods"] for env in profile["envs"]]
    return out


def _under(*parts: str, doc: str | None = None) -> staticmethod:
    """A RunLayout accessor of a step's folder or file: `workdir / parts[0] / parts[1] ...`."""

    def accessor(workdir: Path) -> Path:
        return workdir.joinpath(*parts)

    accessor.__doc__ = doc
    return staticmethod(accessor)


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder."""

    run_dir: Path

    @property
    def manifest(self) -> Path:
        return self.run_dir / "run.json"

    @property
    def steps(self) -> Path:
        return self.run_dir / "steps"

    @property
    def setup(self) -> Path:
        return self.run_dir / "setup"

    @property
    def setup_json(self) -> Path:
        return self.run_dir / "setup" / "setup.json"

    @property
    def base(self) -> Path:
        return self.run_dir / "base"

    @property
    def prefixes(self) -> Path:
        """The fixed erroneous prefixes (<env>.json), made by the base model's evaluation."""
        return self.eval(self.base) / "error_prefixes"

    @property
    def figures(self) -> Path:
        """Where the executed figure and table notebooks go (the figures themselves go to the
        figures folder)."""
        return self.run_dir / "figures"

    def iteration(self, variant: str, iteration: int) -> Path:
        """The folder of a variant's iteration (its revision, SFT and evaluation)."""
        return self.run_dir / variant / f"iter{iteration}"

    @staticmethod
    def shares_first_search(variant_envs: list[str], run_envs: list[str], iteration: int) -> bool:
        """Iteration 1 samples with the same base model and seed for every variant, multi-task
        or single-task, and a tree's samples are seeded by (seed, env, task, node) alone, so an
        env's iteration-1 trees are the same in every variant: they are searched once, over all
        the run's envs, and each variant's revision step reads those of its own envs."""
        return iteration == 1 and set(variant_envs) <= set(run_envs)

    def search_workdir(self, variant: str, iteration: int, shared: bool) -> Path:
        """The folder of the search a variant's iteration uses (the shared first search, or its own)."""
        return self.run_dir / "iter1-mcts" if shared else self.iteration(variant, iteration)

    # A step's folders and files inside its workdir (an iteration's folder, or the shared first
    # search's): `RunLayout.trees(workdir)` is workdir / "mcts" / "trees".
    search = _under("mcts", doc="A search's output folder (summary.json; trees/ one JSON per task).")
    search_summary = _under("mcts", "summary.json")
    trees = _under("mcts", "trees")
    revision = _under("revision", doc="The revision step's folder: dataset/ and summary.json.")
    revision_summary = _under("revision", "summary.json")
    dataset = _under("revision", "dataset")
    sft = _under("sft", doc="The SFT step's folder: merged/, adapter/, train_metrics.json.")
    train_metrics = _under("sft", "train_metrics.json")
    merged = _under("sft", "merged",
                    doc="The fully fine-tuned model (what the next iteration samples with, without LoRA).")
    adapter = _under("sft", "adapter",
                     doc="The LoRA adapter on the run's base model (what the next iteration samples with, with LoRA).")
    eval = _under("eval",
                  doc="An evaluation's folder: <env>.jsonl, <env>.metrics.json, metrics.json, <env>.revision.*")
    eval_sampler = _under("eval", "sampler.json",
                          doc="What an evaluation sampled with: the backend that ran (`auto` resolved), adapter, calls.")
    eval_metrics = _under("eval", "metrics.json",
                          doc="Written last by an evaluation's test-split part (the revision-ability part follows).")

    @classmethod
    def trained_model(cls, workdir: Path, lora: bool) -> Path:
        """What an iteration's SFT hands on (train.trained_model): adapter/ with LoRA, else merged/."""
        return cls.adapter(workdir) if lora else cls.merged(workdir)

    @classmethod
    def trained_model_config(cls, workdir: Path, lora: bool) -> Path:
        """The file whose existence proves the SFT step saved its model."""
        return cls.trained_model(workdir, lora) / ("adapter_config.json" if lora else "config.json")
