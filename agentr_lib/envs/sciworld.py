"""ScienceWorld (Wang et al., 2022) behind the `Env` protocol, over `scienceworld==1.2.3`.

Why a wrapper of our own instead of `scienceworld.ScienceWorldEnv`:
- its constructor starts an uncapped JVM (1-1.6 GB each); we launch the py4j gateway ourselves
  with `JAVA_OPTS` (heap cap, serial GC, and a constant identity hash code -- see below);
- its `step()` always builds the valid-action list (~10x the cost of the step itself); search
  needs only (observation, score, completed);
- an agent's free-text action that the simulator does not understand is mapped to the closest
  valid action here (token overlap), and an "Ambiguous request" is resolved at once, so a
  pending question never swallows the agent's next action;
- a crashed JVM is restarted and the current episode replayed, so a long MCTS run survives it.

Determinism: the simulator seeds its global RNG from the variation index on every load, but
it orders object contents (and thus descriptions and heat-transfer order, hence thermometer
readings) by identity hash codes, which continue from one episode to the next inside a JVM:
the same task replayed twice in one JVM gave different observations. `-XX:hashCode=2` makes
every identity hash constant, after which replays are identical within and across JVMs (and
all gold paths still score 100). This is what makes `restore()` = reset + replay exact.

Tasks follow AgentGym (agentenv-sciworld): the 30 task types minus the 7 long ones (ids 5-1,
5-2 grow plant/fruit, 9-1..9-3 inclined planes, 10-1, 10-2 Mendelian genetics) = 23 types,
all variations flattened in tasks.json order, so our task id == AgentGym's `data_idx`
(4639 ids). Splits use the simulator's official train/test variations (dev is unused).
"""

from __future__ import annotations

import logging
import random
import re
import subprocess
import weakref
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from .base import ExpertStep

logger = logging.getLogger(__name__)
#: py4j logs every broken connection at ERROR with a traceback (~190 lines for one killed JVM,
#: some after close()); this wrapper detects the crash, restarts and says so in one warning.
logging.getLogger("py4j").setLevel(logging.CRITICAL)

T = TypeVar("T")

#: -Xmx512m: without a cap the JVM's heap may grow to a quarter of the machine's memory (we
#: measured 4.3 GiB resident after 23 gold paths on a 24 GB machine; ~300-480 MiB with the cap).
#: hashCode=2: constant identity hash codes -> deterministic object order (module docstring).
#: (SerialGC was tried: no faster, and it kept the whole heap resident, ~475 vs ~300 MiB.)
JAVA_OPTS: tuple[str, ...] = (
    "-Xmx512m",
    "-XX:+UnlockExperimentalVMOptions",
    "-XX:hashCode=2",
)
_DETERMINISM_OPTS = ("-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2")

#: AgentGym's exclusions (task ids of scienceworld's tasks.json): the long tasks.
EXCLUDED_TASK_IDS: tuple[str, ...] = ("5-1", "5-2", "9-1", "9-2", "9-3", "10-1", "10-2")
TEST_SIZE = 200
SPLIT_SEED = 0

#: Simulator replies meaning "this input was not parsed as any action" (no move consumed).
NOT_UNDERSTOOD: tuple[str, ...] = ("No known action matches that input.", "Unknown action.")
AMBIGUOUS_PREFIX = "Ambiguous request"
EPISODE_OVER = "The episode is over. Start a new task."
SIMULATOR_ERROR = "No known action matches that input. (The simulator failed on it.)"

INSTRUCTION = (
    "You are an agent in ScienceWorld, a text-based simulation of rooms, objects and science "
    "experiments. Each turn I give you an observation; reply with one action to make progress "
    "on the task. The score goes up as you complete parts of the task.\n"
    "Actions: look around; look at OBJ; look in OBJ; go to LOC; open/close OBJ (e.g. open door "
    "to kitchen); pick up OBJ; put down OBJ; move OBJ to OBJ; pour OBJ into OBJ; mix OBJ; "
    "activate/deactivate OBJ; connect OBJ to OBJ; use OBJ on OBJ; read OBJ; examine OBJ; "
    "focus on OBJ (only on the object the task asks about: a wrong focus ends the task); "
    "wait; wait1; inventory; task.\n"
    "Reply in this format:\nThought: <short reasoning>\nAction: <one action>\n"
    "Example:\nThought: The thermometer is in the kitchen, so I go there.\nAction: go to kitchen"
)

_TOKEN_RE = re.compile(r"[a-z0-9]+")
#: Words that say what to do, not to what: a mapped action must share a word outside this set
#: with the original, so "pick up thermometer" is never mapped to "pick up picture".
_FUNCTION_WORDS = frozenset(
    "a an the to on in into at of from with and up down around containing "
    "open close activate deactivate connect disconnect use look read move pick put pour dunk "
    "mix go eat flush focus wait wait1 examine inventory task drop teleport".split()
)
#: First words of the simulator's action templates: a near miss keeps its verb, so
#: "open door to kitchn" may become "open door to kitchen" but never "connect door to kitchen".
_VERBS = frozenset(
    "open close activate deactivate connect disconnect use look read move pick put pour dunk "
    "mix go eat flush focus wait wait1 examine inventory task drop teleport".split()
)
_FUZZY_TOKEN_MIN_LEN = 4
_FUZZY_TOKEN_RATIO = 80.0


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text.lower())


def normalise_action(action: str) -> str:
    """Lower-case, collapse whitespace, strip surrounding quotes and trailing punctuation:
    the simulator's parser rejects "Open door to kitchen." but accepts "open door to kitchen"."""
    text = " ".join(str(action).split()).strip().strip("`\"'").strip()
    return text.rstrip(" .,;:!?").strip().lower()


def closest_action(action: str, candidates: list[str], min_similarity: float = 0.5) -> tuple[str | None, float]:
    """The closest candidate to `action` by token overlap (tokens equal, or both >= 4
    characters with a rapidfuzz ratio >= 80, so "kitchn" matches "kitchen").

    A candidate qualifies when its token-overlap F1 with `action` is >= `min_similarity`, it
    shares a content word (not a verb/preposition) with `action`, and -- when `action` starts
    with a simulator verb -- it starts with the same verb. Among those: the most content words
    of `action` covered (so "use thermometer on substance" prefers an action naming a
    substance over "use thermometer on thermometer"), then F1, then whole-string similarity,
    then shorter, then alphabetical. Returns (candidate, F1) or (None, 0.0)."""
    from rapidfuzz import fuzz

    query = _tokens(action)
    if not query or not candidates:
        return None, 0.0
    query_set = set(query)
    vocabulary = sorted({tok for cand in candidates for tok in _tokens(cand)})
    # canonical: vocabulary token -> the query token it counts as (exact or fuzzy match)
    canonical: dict[str, str] = {}
    for tok in vocabulary:
        if tok in query_set:
            canonical[tok] = tok
        elif len(tok) >= _FUZZY_TOKEN_MIN_LEN:
            for q in query:
                if len(q) >= _FUZZY_TOKEN_MIN_LEN and fuzz.ratio(tok, q) >= _FUZZY_TOKEN_RATIO:
                    canonical[tok] = q
                    break
    content = query_set - _FUNCTION_WORDS
    verb = query[0] if query[0] in _VERBS else None
    lowered = action.lower()
    best_key: tuple[float, float, int] | None = None
    best_action: str | None = None
    for cand in sorted(candidates):  # sorted + strict ">" below: ties go to the alphabetically first
        cand_list = _tokens(cand)
        if verb is not None and (not cand_list or cand_list[0] != verb):
            continue
        cand_tokens = set(cand_list)
        matched = {canonical[t] for t in cand_tokens if t in canonical}
        if not matched or (content and not (matched & content)):
            continue
        f1 = 2 * len(matched) / (len(query_set) + len(cand_tokens))
        if f1 < min_similarity:
            continue
        key = (len(matched & content), f1, fuzz.ratio(lowered, cand), -len(cand))
        if best_key is None or key > best_key:
            best_key, best_action = key, cand
    if best_key is None:
        return None, 0.0
    return best_action, best_key[1]


@dataclass(frozen=True)
class SciWorldState:
    """What `snapshot()` returns: the task and the exact simulator inputs since the reset
    (after normalisation, mapping and ambiguity resolution), so a replay needs no mapping."""

    task_id: int
    inputs: tuple[str, ...]
    actions: tuple[str, ...]
    score: int
    done: bool


class _Simulator:
    """One JVM (py4j gateway) holding one simulator (`PythonInterface`)."""

    def __init__(self, java_opts: tuple[str, ...]):
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway
        from scienceworld.constants import BASEPATH, JAR_PATH

        port, proc = launch_gateway(
            classpath=JAR_PATH, die_on_exit=True, cwd=BASEPATH, return_proc=True, javaopts=list(java_opts)
        )
        self.proc: subprocess.Popen = proc
        self.gateway = JavaGateway(gateway_parameters=GatewayParameters(auto_field=True, port=port), java_process=proc)
        self.server = self.gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


def _stop(sim: _Simulator) -> None:
    """Stop a JVM for good: gateway shutdown, EOF on its stdin (py4j's die_on_exit), then kill."""
    try:
        if sim.alive():
            sim.gateway.shutdown()
    except Exception:  # noqa: BLE001 -- a dead or half-dead JVM: fall through to kill
        logger.debug("gateway shutdown failed", exc_info=True)
    try:
        sim.gateway.close()
    except Exception:  # noqa: BLE001
        pass
    try:
        if sim.proc.stdin:
            sim.proc.stdin.close()
    except Exception:  # noqa: BLE001
        pass
    try:
        sim.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        sim.proc.kill()
        sim.proc.wait(timeout=5)


def _stop_all(sims: list[_Simulator]) -> None:
    while sims:
        _stop(sims.pop())


class ScienceWorldEnv:
    """ScienceWorld as an `Env`.

    reset(task_id) returns the task description + the "look around" observation (AgentGym).
    step(action) returns (simulator observation, reward, done) where **reward is the current
    score / 100** (not the delta): the last step's reward is the episode's final score, as in
    AgentGym's client and the paper. A negative score (e.g. focusing on the wrong object)
    ends the episode with reward 0. Steps after the end return (EPISODE_OVER, final reward, True).

    Two step costs, same semantics: `step()` is lean (simulator step + score + completed,
    ~10 ms); `step_full()` also builds the valid-action list (~100 ms mean, 30-240 ms, up to
    3,000+ actions), kept in `self.valid_actions`. With `full_step=True`, `step()` is `step_full()`.
    Both try the action as typed first; only when the simulator answers "No known action
    matches that input." is it mapped to the closest valid action (`closest_action`), which is
    recorded in `last_mapping` = (original, mapped) and counted in `stats["mapped"]`; when no
    valid action is close enough, the simulator's own message comes back with no move spent.
    An "Ambiguous request" is resolved to option 0 at once (`stats["ambiguous"]`).

    No simulator snapshot exists: `snapshot()` returns the inputs since the reset and
    `restore()` = reload + replay of those inputs (lean, no mapping): one load (~40-100 ms,
    more for big worlds) + ~5-10 ms per replayed step; ~190 ms mean to restore half a gold path
    (benchmarks/envs.py, shared 2-core machine). supports_snapshot is False so MCTS
    knows restore is not cheap.

    `step_limit`: None (default) = no cap on simulator moves (the agent's own turn limit caps
    episodes; several gold paths need > 100 moves, e.g. freeze); AgentGym used 100.
    """

    name = "sciworld"
    instruction = INSTRUCTION
    supports_snapshot = False
    data_mode = "ScienceWorld simulator (scienceworld 1.2.3), 23 AgentGym task types"
    #: the simulator's not-understood replies; an ambiguous request never reaches the agent (step
    #: resolves it to option 0 at once), so it is no failure the agent sees
    failure_prefixes = NOT_UNDERSTOOD

    def __init__(
        self,
        java_opts: tuple[str, ...] = JAVA_OPTS,
        full_step: bool = False,
        step_limit: int | None = None,
        min_similarity: float = 0.5,
        test_size: int = TEST_SIZE,
        split_seed: int = SPLIT_SEED,
        max_restarts: int = 3,
    ):
        self.java_opts = tuple(java_opts)
        self.full_step = full_step
        self.step_limit = step_limit
        self.min_similarity = min_similarity
        self.test_size = test_size
        self.split_seed = split_seed
        self.max_restarts = max_restarts
        self._sims: list[_Simulator] = []  # at most one; a list so the finalizer can see it
        self._finalizer = weakref.finalize(self, _stop_all, self._sims)
        self._tasks: list[tuple[str, int]] | None = None
        self._sets: dict[str, dict[str, list[int]]] | None = None
        self.task_id: int | None = None
        self._inputs: list[str] = []
        self._actions: list[str] = []
        self.score = 0
        self.done = False
        self.valid_actions: list[str] | None = None
        self._valid_at: int = -1  # len(self._inputs) when valid_actions was computed
        self.last_mapping: tuple[str, str] | None = None
        self.stats = {"mapped": 0, "unmapped": 0, "ambiguous": 0, "restarts": 0}

    # ---------------------------------------------------------------- simulator lifecycle
    @property
    def _sim(self) -> _Simulator:
        if not self._sims:
            try:
                self._sims.append(_Simulator(self.java_opts))
            except Exception as err:  # noqa: BLE001 -- a JVM that rejects the experimental flag
                fallback = tuple(o for o in self.java_opts if o not in _DETERMINISM_OPTS)
                if fallback == self.java_opts:
                    raise RuntimeError(f"could not start the ScienceWorld JVM with options {self.java_opts}: {err}") from err
                logger.warning("JVM rejected %s (%s); running without it: replays may differ", _DETERMINISM_OPTS, err)
                self.java_opts = fallback
                self._sims.append(_Simulator(self.java_opts))
        return self._sims[0]

    @property
    def java_pid(self) -> int | None:
        """Process id of our JVM, or None when none is running."""
        return self._sims[0].pid if self._sims else None

    def close(self) -> None:
        """Stop the JVM (no java process of ours remains). Safe to call twice; the env can be
        used again afterwards (a new JVM starts on demand)."""
        _stop_all(self._sims)

    def __enter__(self) -> "ScienceWorldEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[[Any], T], replay: bool = True) -> T:
        """Run fn(server). When the JVM died or its connection broke (a py4j error while the
        process is gone or the network failed), restart it, reload the current task and replay
        its inputs (when `replay`), then try again, up to `max_restarts` times in a row.
        A Java exception from a live JVM is re-raised (a simulator error, not a crash)."""
        from py4j.protocol import Py4JError, Py4JJavaError

        needs_replay = False
        for attempt in range(self.max_restarts + 1):
            try:
                server = self._sim.server
                if needs_replay:
                    self._replay_inputs(server)
                return fn(server)
            except Py4JError as err:
                if isinstance(err, Py4JJavaError) and self._sims and self._sims[0].alive():
                    raise
                if attempt == self.max_restarts:
                    raise RuntimeError(
                        f"ScienceWorld JVM failed {attempt + 1} times in a row (last: {type(err).__name__}: {err})"
                    ) from err
                logger.warning("ScienceWorld JVM failure (%s); restarting it", type(err).__name__)
                self.stats["restarts"] += 1
                _stop_all(self._sims)
                needs_replay = replay and self.task_id is not None
        raise AssertionError("unreachable")

    def _replay_inputs(self, server: Any) -> None:
        """Reload the current task and send its recorded inputs again (deterministic)."""
        name, variation = self.task(self.task_id)  # type: ignore[arg-type]
        server.load(name, variation, "", False)
        for text in self._inputs:
            server.step(text)
        self.valid_actions, self._valid_at = None, -1

    # ---------------------------------------------------------------- tasks and splits
    def _load_task_table(self) -> None:
        """Task types (tasks.json order minus the exclusions) and their official sets.
        The sets depend only on the task name and its variation count (PythonInterface.getSets),
        so we set the name instead of loading each task (23 loads would take ~10-20 s)."""
        from scienceworld.constants import TASKS

        def build(server: Any) -> tuple[list[tuple[str, int]], dict[str, dict[str, list[int]]]]:
            tasks: list[tuple[str, int]] = []
            sets: dict[str, dict[str, list[int]]] = {}
            for entry in TASKS:
                if entry["task_id"] in EXCLUDED_TASK_IDS:
                    continue
                name = entry["task_name"]
                n = int(server.getTaskMaxVariations(name))
                getattr(server, "taskStr_$eq")(name)
                sets[name] = {
                    "train": sorted(int(v) for v in server.getVariationsTrain()),
                    "dev": sorted(int(v) for v in server.getVariationsDev()),
                    "test": sorted(int(v) for v in server.getVariationsTest()),
                }
                if sorted(sets[name]["train"] + sets[name]["dev"] + sets[name]["test"]) != list(range(n)):
                    raise RuntimeError(f"scienceworld task {name!r}: official sets do not partition its {n} variations")
                tasks.extend((name, v) for v in range(n))
            return tasks, sets

        tasks, sets = self._call(build, replay=False)
        if self.task_id is not None:  # setting taskStr touched the server: put the episode back
            self._restart_episode()
        self._tasks, self._sets = tasks, sets

    @property
    def tasks(self) -> list[tuple[str, int]]:
        """All (task name, variation) pairs; a task id indexes this list."""
        if self._tasks is None:
            self._load_task_table()
        assert self._tasks is not None
        return self._tasks

    @property
    def task_types(self) -> list[str]:
        """The 23 task type names, in tasks.json order."""
        return list(dict.fromkeys(name for name, _ in self.tasks))

    def official_set(self, task_name: str, split: str) -> list[int]:
        """The simulator's official variations of `task_name` for split train/dev/test."""
        self.tasks  # noqa: B018 -- fills _sets
        assert self._sets is not None
        if task_name not in self._sets:
            raise KeyError(f"unknown or excluded ScienceWorld task {task_name!r}; expected one of {self.task_types}")
        return list(self._sets[task_name][split])

    def task(self, task_id: int) -> tuple[str, int]:
        """(task name, variation) of a task id."""
        tasks = self.tasks
        if not 0 <= int(task_id) < len(tasks):
            raise IndexError(f"ScienceWorld task id {task_id} out of range 0..{len(tasks) - 1}")
        return tasks[int(task_id)]

    def task_ids(self, split: str) -> list[int]:
        """Deterministic task ids. "train": every official train variation; "test": 200 of the
        official test variations. Both are ordered round-robin over the 23 task types (each
        type's variations shuffled with `split_seed`), so any prefix is balanced across types;
        the test split is the first `test_size` of that order (types with few test variations
        contribute all of theirs)."""
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        index = {pair: i for i, pair in enumerate(self.tasks)}
        rng = random.Random(f"sciworld-{split}-{self.split_seed}")
        queues = []
        for name in self.task_types:
            ids = [index[(name, v)] for v in self.official_set(name, split)]
            rng.shuffle(ids)
            queues.append(ids)
        order: list[int] = []
        depth = 0
        while any(depth < len(q) for q in queues):
            order.extend(q[depth] for q in queues if depth < len(q))
            depth += 1
        return order[: self.test_size] if split == "test" else order

    # ---------------------------------------------------------------- episode
    def reset(self, task_id: int) -> str:
        """Load task `task_id`; returns its description + the "look around" observation."""
        name, variation = self.task(task_id)
        self.task_id = int(task_id)
        self._inputs, self._actions = [], []
        self.score, self.done = 0, False
        self.valid_actions, self._valid_at = None, -1
        self.last_mapping = None

        def load(server: Any) -> tuple[str, str]:
            server.load(name, variation, "", False)
            return str(server.getTaskDescription()), str(server.step("look around"))

        description, observation = self._call(load, replay=False)
        self._inputs.append("look around")
        return f"{description}\n{observation}"

    def _restart_episode(self) -> None:
        """Reload the current task and replay its inputs on the live JVM."""
        self._call(self._replay_inputs, replay=False)

    def _server_step(self, text: str) -> tuple[str, int, bool, int]:
        """(observation, score 0..100 or negative, completed, moves) of one simulator input.
        A Java exception on this input (a simulator bug) puts the episode back as it was and
        answers like an unknown action, so step() never raises for an odd action."""
        from py4j.protocol import Py4JJavaError

        def go(server: Any) -> tuple[str, int, bool, int]:
            observation = str(server.step(text))
            return observation, int(round(100 * float(server.getScore()))), bool(server.getCompleted()), int(server.getNumMoves())

        try:
            return self._call(go)
        except Py4JJavaError as err:
            logger.warning("ScienceWorld raised on input %r: %s", text, err)
            self._restart_episode()
            return SIMULATOR_ERROR, self.score, self.done, -1

    def get_valid_actions(self) -> list[str]:
        """The simulator's valid action-object combinations for the current state (cached
        until the next step). Costs ~30-240 ms depending on the room."""
        if self.valid_actions is None or self._valid_at != len(self._inputs):
            self.valid_actions = sorted(self._call(lambda s: [str(a) for a in s.getValidActionObjectCombinations()]))
            self._valid_at = len(self._inputs)
        return self.valid_actions

    def step(self, action: str) -> tuple[str, float, bool]:
        """Apply one action (see the class docstring for reward and mapping)."""
        return self._step(action, full=self.full_step)

    def step_full(self, action: str) -> tuple[str, float, bool]:
        """As step(), then build the valid-action list of the new state (`self.valid_actions`)."""
        return self._step(action, full=True)

    @property
    def reward(self) -> float:
        return 0.0 if self.score < 0 else min(self.score, 100) / 100.0

    def _step(self, action: str, full: bool) -> tuple[str, float, bool]:
        if self.task_id is None:
            raise RuntimeError("ScienceWorldEnv.step() before reset(task_id)")
        self.last_mapping = None
        if self.done:
            return EPISODE_OVER, self.reward, True
        original = "" if action is None else str(action)
        self._actions.append(original)
        text = normalise_action(original)
        observation, score, completed, moves = self._server_step(text) if text else (NOT_UNDERSTOOD[0], self.score, False, -1)
        if text:
            self._inputs.append(text)
        if observation.startswith(NOT_UNDERSTOOD):
            if text:  # nothing happened in the simulator: keep the replay log minimal
                self._inputs.pop()
            mapped, _ = closest_action(text, self.get_valid_actions(), self.min_similarity) if text else (None, 0.0)
            if mapped is None:
                self.stats["unmapped"] += 1
                if full:
                    self.get_valid_actions()
                return observation, self.reward, self.done
            self.last_mapping = (original, mapped)
            self.stats["mapped"] += 1
            text = mapped
            observation, score, completed, moves = self._server_step(text)
            self._inputs.append(text)
        if observation.startswith(AMBIGUOUS_PREFIX):
            self.stats["ambiguous"] += 1
            first = next((line.split("\t", 1)[1] for line in observation.splitlines() if line.startswith("0:")), "0")
            self.last_mapping = (original, first)
            observation, score, completed, moves = self._server_step("0")
            self._inputs.append("0")
        self.score = score
        self.done = bool(completed) or score < 0 or (self.step_limit is not None and moves > self.step_limit)
        if full:
            self.get_valid_actions()
        return observation, self.reward, self.done

    # ---------------------------------------------------------------- snapshot / restore
    def snapshot(self) -> SciWorldState:
        """The current episode as (task, simulator inputs); restore() replays it."""
        if self.task_id is None:
            raise RuntimeError("ScienceWorldEnv.snapshot() before reset(task_id)")
        return SciWorldState(self.task_id, tuple(self._inputs), tuple(self._actions), self.score, self.done)

    def restore(self, state: SciWorldState) -> None:
        """Reload the task and replay the snapshot's inputs (one load + one lean step each)."""
        if not isinstance(state, SciWorldState):
            raise TypeError(f"ScienceWorldEnv.restore() expects a SciWorldState from snapshot(), got {type(state).__name__}")
        self.task_id = state.task_id
        self._inputs, self._actions = list(state.inputs), list(state.actions)
        self._restart_episode()
        self.score, self.done = state.score, state.done
        self.last_mapping = None

    # ---------------------------------------------------------------- expert
    def gold_path(self, task_id: int) -> tuple[str, list[str]]:
        """(task description, the simulator's gold action sequence) from one load with
        generateGoldPath=True; the current episode, if any, is put back afterwards."""
        name, variation = self.task(task_id)

        def gold(server: Any) -> tuple[str, list[str]]:
            server.load(name, variation, "", True)
            return str(server.getTaskDescription()), [str(a) for a in server.getGoldActionSequence()]

        description, actions = self._call(gold, replay=False)
        if self.task_id is not None:
            self._restart_episode()
        return description, actions

    def expert(self, task_id: int) -> list[ExpertStep]:
        """The gold path with short, regular thoughts: the first restates the goal."""
        description, actions = self.gold_path(task_id)
        steps = [ExpertStep(thought_for(action), action) for action in actions]
        if steps:
            steps[0] = ExpertStep(f"My task is to {task_goal(description)}. {steps[0].thought}", steps[0].action)
        return steps


def task_goal(description: str) -> str:
    """First sentence of a task description without "Your task is to" ("boil water")."""
    text = re.sub(r"^\s*your task is to\s+", "", description.strip(), flags=re.IGNORECASE)
    first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return first.rstrip(" .")


_THOUGHT_TEMPLATES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (r"^open door to (.+)$", "I open the door to the {0}."),
        (r"^go to (.+)$", "I go to the {0}."),
        (r"^look around$", "I look around to see what is here."),
        (r"^look at (.+)$", "I look at the {0}."),
        (r"^look in (.+)$", "I look in the {0}."),
        (r"^examine (.+)$", "I examine the {0}."),
        (r"^pick up (.+)$", "I need the {0}, so I pick it up."),
        (r"^focus on (.+)$", "The {0} is what the task is about, so I focus on it."),
        (r"^use thermometer in inventory on (.+)$", "I measure the temperature of the {0}."),
        (r"^use (.+) on (.+)$", "I use the {0} on the {1}."),
        (r"^move (.+) to (.+)$", "I move the {0} to the {1}."),
        (r"^pour (.+) into (.+)$", "I pour the {0} into the {1}."),
        (r"^pour (.+) in (.+)$", "I pour the {0} into the {1}."),
        (r"^dunk (.+) into (.+)$", "I dunk the {0} into the {1}."),
        (r"^connect (.+) to (.+)$", "I connect the {0} to the {1}."),
        (r"^disconnect (.+)$", "I disconnect the {0}."),
        (r"^activate (.+)$", "I turn on the {0}."),
        (r"^deactivate (.+)$", "I turn off the {0}."),
        (r"^open (.+)$", "I open the {0}."),
        (r"^close (.+)$", "I close the {0}."),
        (r"^mix (.+)$", "I mix the {0}."),
        (r"^read (.+)$", "I read the {0}."),
        (r"^(?:drop|put down) (.+)$", "I put down the {0}."),
        (r"^wait1?$", "I wait for things to change."),
        (r"^inventory$", "I check my inventory."),
        (r"^(\d+)$", "I choose option {0}."),
    )
)


def thought_for(action: str) -> str:
    """A short, regular thought for a gold action (templates per verb; fallback "Next, I ...")."""
    text = action.strip()
    for pattern, template in _THOUGHT_TEMPLATES:
        match = pattern.match(text)
        if match:
            return template.format(*match.groups())
    return f"Next, I {text}."


__all__ = [
    "EXCLUDED_TASK_IDS",
    "INSTRUCTION",
    "JAVA_OPTS",
    "SciWorldState",
    "ScienceWorldEnv",
    "closest_action",
    "normalise_action",
    "task_goal",
    "thought_for",
]
