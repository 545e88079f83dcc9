"""results.json and the README tables, from a synthetic run folder shaped like the pipeline's
(per-episode logs, metrics, search and revision summaries, run.json step times)."""

import json
from pathlib import Path

import papermill
import pytest

from agentr_lib.evaluate import episode_record, metrics_from_records
from agentr_lib.figures import caption
from agentr_lib.agent import Trajectory, Turn
from agentr_lib.profiles import load_profile
from agentr_lib.results import (README_BEGIN, README_END, collect_run, has_revision_turn, readme_tables,
                                results_summary, step_minutes, update_readme, write_results_json)
from agentr_lib.stats import bootstrap_ci, paired_bootstrap_ci

ROOT = Path(__file__).resolve().parents[1]
GOALS = list(range(100, 140))  # 40 test goals
METHODS = ["agent_r", "direct_revision", "good_only"]
#: goals solved (the first N of GOALS) per model; every model solves a superset of the base's 10
SOLVED = {("base", 0): 10, ("agent_r", 1): 12, ("agent_r", 2): 16, ("agent_r", 3): 20,
          ("direct_revision", 1): 11, ("direct_revision", 2): 12, ("direct_revision", 3): 14,
          ("good_only", 1): 10, ("good_only", 2): 11, ("good_only", 3): 12}
#: goals (indices into GOALS) where the model emits the revision turn: two of them then succeed
REVISING = {("agent_r", 3): [0, 1, 30], ("direct_revision", 3): [35]}
STEPS = {"setup": 600.0, "base/eval": 60.0, "iter1/mcts": 120.0, "agent_r/iter1/revision": 6.0,
         "agent_r/iter1/sft": 30.0, "agent_r/iter1/eval": 60.0, "agent_r/iter2/mcts": 90.0,
         "figures/14_tables": 3.0}


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _episode(task: int, success: bool, revise: bool, env: str = "textcraft") -> dict:
    actions = ["get 1 oak logs", "craft 4 oak planks using 1 oak logs"]
    if revise:
        actions.insert(1, "Wait")  # the revision turn, however the model capitalised it
    steps = [Turn(response=f"Thought: t\nAction: {a}", action=a, observation="ok", reward=0.0, done=False)
             for a in actions]
    trajectory = Trajectory(env=env, task_id=task, instruction="i", first_observation="o", steps=steps,
                            final_reward=1.0 if success else 0.0, done=success)
    return episode_record(trajectory)


def _eval_dir(path: Path, solved: int, revising: list[int] = (), env: str = "textcraft", goals=GOALS,
              revision_scores: float | None = 0.0) -> None:
    records = [_episode(task, i < solved, i in revising, env) for i, task in enumerate(goals)]
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{env}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    _write(path / f"{env}.metrics.json", {"env": env, **metrics_from_records(records)})
    if revision_scores is not None:
        prefixes = [_episode(task, i < round(revision_scores * 10), False, env) for i, task in enumerate(goals[:10])]
        (path / f"{env}.revision.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prefixes))
        _write(path / f"{env}.revision.metrics.json", {"env": env, **metrics_from_records(prefixes)})


def make_run(root: Path, envs=("textcraft",), methods=METHODS, goals_of=None) -> Path:
    """A finished run: base + 3 iterations of each method, shared iteration-1 trees."""
    run = root / "run"
    config = load_profile("smoke", {"envs": list(envs), "methods": list(methods)})
    _write(run / "run.json", {"config": config, "steps": {k: {"status": "done", "seconds": v} for k, v in STEPS.items()},
                              "setup": {"data_modes": {env: "synthetic" for env in envs}}})
    goals_of = goals_of or (lambda method, iteration, env: GOALS)
    for env in envs:
        _eval_dir(run / "base" / "eval", SOLVED[("base", 0)], env=env, goals=goals_of("base", 0, env))
    _write(run / "iter1-mcts" / "mcts" / "summary.json",
           {"per_env": [{"env": env, "trees": 16, "trees_with_success": 3} for env in envs]})
    for method in methods:
        for k in (1, 2, 3):
            workdir = run / method / f"iter{k}"
            for env in envs:
                _eval_dir(workdir / "eval", SOLVED[(method, k)], REVISING.get((method, k), []), env=env,
                          goals=goals_of(method, k, env), revision_scores=0.1 * k if method == "agent_r" else 0.0)
            if k > 1:
                _write(workdir / "mcts" / "summary.json",
                       {"per_env": [{"env": env, "trees": 16, "trees_with_success": 3 + k} for env in envs]})
            kind = {"agent_r": "revision", "direct_revision": "direct"}.get(method)
            _write(workdir / "revision" / "summary.json", {
                "counts": [{"env": env, "revision": 8 * k if kind == "revision" else 0, "good": 4 + k,
                            "direct": 7 * k if kind == "direct" else 0} for env in envs],
                "t_prime": {env: [2, 3] for env in envs}})
    return run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("results"))


def _run(summary: dict, method: str, iteration: int) -> dict:
    return next(r for r in summary["runs"] if r["method"] == method and r["iteration"] == iteration)


def test_schema_is_exactly_the_issue_s(run_dir):
    summary = results_summary(collect_run(run_dir))
    assert set(summary) == {"profile", "model", "backend", "test_goals", "base", "runs", "minutes"}
    assert set(summary["base"]) == {"success", "ci95", "revision_ability"}
    assert set(summary["minutes"]) == {"total", "build", "search", "sft", "eval"}
    assert len(summary["runs"]) == 9
    for run in summary["runs"]:
        assert set(run) == {"method", "iteration", "success", "ci95", "delta_vs_base", "delta_ci95",
                            "revision_ability", "episodes_with_revision_turn", "recovered_after_revision",
                            "loops", "trees_with_good_leaf", "trees", "revision", "good"}
    assert [(r["method"], r["iteration"]) for r in summary["runs"]] == [(m, k) for m in METHODS for k in (1, 2, 3)]
    assert (summary["profile"], summary["model"], summary["backend"], summary["test_goals"]) == (
        "smoke", "micro", "hf", 40)


def test_the_backend_is_the_one_that_ran_not_the_profile_s_auto(tmp_path):
    run = make_run(tmp_path)
    manifest = json.loads((run / "run.json").read_text())
    manifest["config"]["backend"] = "auto"
    _write(run / "run.json", manifest)
    assert results_summary(collect_run(run))["backend"] == "auto"  # nothing says what ran: the setting
    _write(run / "base" / "eval" / "sampler.json", {"backend": "vllm", "adapter": None})
    meta = collect_run(run).meta
    assert meta["backend"] == "vllm" and "backend vllm" in caption(meta)


def test_scores_intervals_and_paired_differences(run_dir):
    summary = results_summary(collect_run(run_dir))
    base = summary["base"]
    assert base["success"] == 25.0
    lo, hi = base["ci95"]
    assert lo < 25.0 < hi
    assert [lo, hi] == [round(x, 2) for x in bootstrap_ci([1.0] * 10 + [0.0] * 30, scale=100)]
    final = _run(summary, "agent_r", 3)
    assert final["success"] == 50.0 and final["delta_vs_base"] == 25.0
    # Agent-R solves the base model's goals plus 10 more: the paired interval excludes 0 ...
    assert 0 < final["delta_ci95"][0] < 25.0 < final["delta_ci95"][1]
    base_goals = {str(g): float(i < 10) for i, g in enumerate(GOALS)}
    mine = {str(g): float(i < 20) for i, g in enumerate(GOALS)}
    assert final["delta_ci95"] == [round(x, 2) for x in paired_bootstrap_ci(mine, base_goals, scale=100)]
    # ... and a model with the base model's outcomes differs by exactly [0, 0]
    assert _run(summary, "good_only", 1)["delta_ci95"] == [0.0, 0.0]


def test_revision_turns_search_data_and_loops(run_dir):
    results = collect_run(run_dir)
    summary = results_summary(results)
    final = _run(summary, "agent_r", 3)
    assert (final["episodes_with_revision_turn"], final["recovered_after_revision"]) == (3, 2)
    direct = _run(summary, "direct_revision", 3)
    assert (direct["episodes_with_revision_turn"], direct["recovered_after_revision"]) == (1, 0)
    assert _run(summary, "agent_r", 1)["episodes_with_revision_turn"] == 0
    # iteration 1's trees are shared between methods; later ones are each method's own
    assert [(_run(summary, m, 1)["trees_with_good_leaf"], _run(summary, m, 1)["trees"]) for m in METHODS] == [(3, 16)] * 3
    assert _run(summary, "agent_r", 3)["trees_with_good_leaf"] == 6
    assert (final["revision"], final["good"]) == (24, 7)
    assert (direct["revision"], direct["good"]) == (21, 7)  # Direct-Revision's trajectories count as revision
    assert _run(summary, "good_only", 2)["revision"] == 0
    metrics = json.loads((run_dir / "agent_r" / "iter3" / "eval" / "textcraft.metrics.json").read_text())
    assert final["loops"] == {k: round(v, 2) for k, v in metrics["loops"].items()}
    assert final["revision_ability"] == 30.0 and summary["base"]["revision_ability"] == 0.0


def test_a_revision_turn_replayed_from_a_prefix_does_not_count():
    record = {"actions": ["wait", "get 1 oak logs"], "prefix_len": 1}
    assert not has_revision_turn(record)
    assert has_revision_turn({"actions": ["get 1 oak logs", " WAIT "], "prefix_len": 0})
    assert not has_revision_turn({"actions": [None, "waiting"]})


def test_minutes_from_the_manifest():
    minutes = step_minutes({k: {"seconds": v} for k, v in STEPS.items()} | {"agent_r/iter2/sft": {"status": "todo"}})
    assert minutes == {"total": round(sum(STEPS.values()) / 60, 2), "build": 10.0, "search": 3.5, "sft": 0.5,
                       "eval": 2.0}


def test_written_atomically_and_readable(run_dir, tmp_path):
    path = write_results_json(run_dir, tmp_path / "figures")
    assert path == tmp_path / "figures" / "results.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(results_summary(collect_run(run_dir))))
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temp file left behind


def test_mismatched_goal_sets_are_an_error_naming_them(tmp_path):
    def goals_of(method, iteration, env):
        return GOALS[:-1] + [999] if (method, iteration) == ("agent_r", 2) else GOALS

    run = make_run(tmp_path, methods=["agent_r"], goals_of=goals_of)
    with pytest.raises(ValueError, match=r"only in the first: textcraft/999.*only in the second: textcraft/139"):
        results_summary(collect_run(run))


def test_without_episode_logs_scores_stay_and_intervals_are_null(tmp_path):
    run = make_run(tmp_path, methods=["agent_r"])
    for path in run.rglob("textcraft.jsonl"):
        path.unlink()
    results = collect_run(run)
    summary = results_summary(results)
    assert summary["base"]["success"] == 25.0 and summary["base"]["ci95"] is None
    assert _run(summary, "agent_r", 3)["delta_ci95"] is None
    assert _run(summary, "agent_r", 3)["episodes_with_revision_turn"] is None
    assert len(results.no_intervals) == 4 and all("absent" in item for item in results.no_intervals)


def test_several_envs_average_with_equal_weight_and_report_each(tmp_path):
    run = make_run(tmp_path, envs=("textcraft", "webshop"), methods=["agent_r"])
    summary = results_summary(collect_run(run))
    assert summary["test_goals"] == 80
    assert set(summary["base"]["per_env"]) == {"textcraft", "webshop"}
    final = _run(summary, "agent_r", 3)
    assert final["success"] == 50.0 and final["per_env"]["webshop"]["delta_vs_base"] == 25.0
    assert final["delta_ci95"][0] > 0
    assert final["episodes_with_revision_turn"] == 6  # 3 per env


def test_readme_tables_come_from_results_json(run_dir, tmp_path):
    path = write_results_json(run_dir, tmp_path)
    summary = json.loads(path.read_text())
    paper = json.loads((ROOT / "data" / "paper_results.json").read_text())
    text = readme_tables(summary, paper)
    assert "TextCraft success (x100) [95% interval over 40 test goals]" in text
    lo, hi = _run(summary, "agent_r", 3)["ci95"]
    assert f"| 50.0 [{lo:.1f}, {hi:.1f}] |" in text
    assert "+25.0 [" in text and "| 3 / 2 |" in text and "| 6 / 16 |" in text
    assert "| 26.0 | 64.0 | 76.0 | 78.0 |" in text  # the paper's Agent-R TextCraft row
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_BEGIN}\nold numbers\n{README_END}\noutro\n")
    update_readme(readme, path)
    new = readme.read_text()
    assert "old numbers" not in new and text in new and new.startswith("intro\n") and new.endswith("outro\n")
    update_readme(readme, path)
    assert readme.read_text() == new  # idempotent
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="no generated-results block"):
        update_readme(readme, path)


def test_tables_notebook_writes_results_json_and_intervals(run_dir, tmp_path):
    figures = tmp_path / "figures"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "14_tables.ipynb"), str(tmp_path / "14.ipynb"),
        parameters={"RUN_DIR": str(run_dir), "FIGURES_DIR": str(figures)},
        cwd=str(ROOT), progress_bar=False, kernel_name="python3",
    )
    summary = json.loads((figures / "results.json").read_text())
    assert _run(summary, "agent_r", 3)["success"] == 50.0
    lo, hi = _run(summary, "agent_r", 3)["ci95"]  # success = score on TextCraft (0/1 rewards)
    assert f"50.00 [{lo:.1f}, {hi:.1f}]" in (figures / "table2.md").read_text()
    assert "[" in (figures / "table6.md").read_text() and "[" in (figures / "table3.md").read_text()


def test_the_readme_results_block_is_generated_from_the_shipped_results_json():
    """The README's results tables are figures/tiny/results.json's, not hand-edited copies."""
    from agentr_lib.io import read_json
    from agentr_lib.layout import ROOT
    from agentr_lib.results import PAPER_RESULTS_PATH

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index(README_BEGIN) + len(README_BEGIN):readme.index(README_END)]
    expected = readme_tables(read_json(ROOT / "figures" / "tiny" / "results.json"), read_json(PAPER_RESULTS_PATH))
    assert block.strip() == expected.strip(), "rerun: python -m agentr_lib.results figures/tiny/results.json --readme README.md"
