"""Conversations in the AgentGym style, action parsing, and trajectories.

A conversation is: user = the environment's instruction; assistant = "Ok."; user = the first
observation; then alternating assistant `Thought: ...\\nAction: <action>` and user observation
(`conversation.py` holds that shape, the opening turns and the truncation to a context
budget, which the model backends share).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Union

from tqdm.auto import tqdm

from .conversation import opening_messages
from .llm.base import Message, Policy, derive_seed

if TYPE_CHECKING:
    from .envs.base import Env

NO_ACTION_OBSERVATION = (
    "Invalid response: no action found. Reply with 'Thought: <your reasoning>' and then "
    "'Action: <one action>' on its own line."
)

#: The revision turn of Agent-R: `Thought: <signal>\nAction: wait`, answered with `ok.`.
#: It is the agent's own turn, not an environment action, so it never reaches the
#: environment (in ScienceWorld "wait" would pass time) and leaves the state and the score
#: as they were: what the model sees after it is exactly what it was trained on.
REVISION_ACTION = "wait"
REVISION_OBSERVATION = "ok."

_ACTION_RE = re.compile(r"action\s*:", re.IGNORECASE)
# `Action:` at the start of a line (after optional numbering / markdown bold): preferred over
# an "action:" inside a sentence ("the next action: ...") when both occur.
_LINE_ACTION_RE = re.compile(r"^[ \t]*(?:\d+[.)][ \t]*)?[*_]*action[*_]*[ \t]*:[*_]*", re.IGNORECASE | re.MULTILINE)
_NUMBERING_RE = re.compile(r"^\s*(?:\(?\d+[.):]|[-*\u2022])\s+")


def parse_action(response: str) -> str | None:
    """The action is the text after the last `Action:`, first line only, with leading
    numbering/bullets, markdown bold, surrounding quotes/backticks and trailing punctuation
    stripped. An `Action:` starting a line wins over one inside a sentence.
    Returns None when there is no action (an invalid step, never an exception)."""
    if not response:
        return None
    matches = list(_LINE_ACTION_RE.finditer(response)) or list(_ACTION_RE.finditer(response))
    if not matches:
        return None
    tail = response[matches[-1].end():].strip()
    line = tail.splitlines()[0] if tail else ""
    line = _NUMBERING_RE.sub("", line.strip("* \t")).strip().strip("`\"'").strip()
    line = line.rstrip(" .,;:!?").strip()
    return line or None


def format_response(thought: str, action: str) -> str:
    return f"Thought: {thought}\nAction: {action}"


@dataclass
class Turn:
    """One agent turn: what the model said, what was executed, what came back (a
    trajectory's `steps`, the name its JSON records keep)."""

    response: str
    action: str | None
    observation: str
    reward: float
    done: bool


@dataclass
class Trajectory:
    """A full episode, serialisable to JSON (per-episode logs, MCTS paths)."""

    env: str
    task_id: int
    instruction: str
    first_observation: str
    steps: list[Turn] = field(default_factory=list)
    final_reward: float = 0.0
    done: bool = False
    hit_turn_limit: bool = False
    #: How many of `steps` were replayed from a given prefix (revision protocol), not generated.
    prefix_len: int = 0

    @property
    def actions(self) -> list[str | None]:
        return [step.action for step in self.steps]

    @property
    def success(self) -> bool:
        return self.final_reward >= 1.0

    @property
    def parse_failures(self) -> int:
        return sum(step.action is None for step in self.steps)

    def messages(self) -> list[Message]:
        """The conversation as chat messages (no loss flags)."""
        messages = opening_messages(self.instruction, self.first_observation)
        for step in self.steps:
            messages.append({"role": "assistant", "content": step.response})
            messages.append({"role": "user", "content": step.observation})
        return messages

    def to_dict(self) -> dict:
        record = asdict(self)
        record["success"] = self.success
        record["num_turns"] = len(self.steps)
        record["parse_failures"] = self.parse_failures
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "Trajectory":
        fields = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        fields["steps"] = [Turn(**step) for step in record.get("steps", [])]
        return cls(**fields)


# --------------------------------------------------------------------------------------
# Running episodes
# --------------------------------------------------------------------------------------

EnvSource = Union["Env", Sequence["Env"], Callable[[], "Env"]]


@dataclass(frozen=True)
class EpisodeSettings:
    """How each episode of `run_episodes` runs: at most `max_turns` turns (replayed prefix
    responses count), replies sampled at `temperature` (0: greedy) of at most `max_new_tokens`
    tokens, each episode's turn seeded from `seed` (and the episode's env, task and turn)."""

    max_turns: int
    temperature: float = 0.0
    max_new_tokens: int = 128
    seed: int = 0


@dataclass
class _Live:
    """One running episode inside run_episodes."""

    index: int
    env: "Env"
    trajectory: Trajectory
    messages: list[Message]


def take_action(env: "Env", action: str | None, score: float) -> tuple[str, float, bool]:
    """One agent turn against the environment: (observation, reward, done).

    No parsed action: an explanatory observation, the env untouched. The revision action:
    `ok.`, the env untouched. Both keep `score` (the episode's current score), because every
    environment reports the current score rather than a delta."""
    if action is None:
        return NO_ACTION_OBSERVATION, score, False
    if action.lower() == REVISION_ACTION:
        return REVISION_OBSERVATION, score, False
    return env.step(action)


def _apply(env: "Env", trajectory: Trajectory, messages: list[Message], response: str) -> Turn:
    """Parse one response, take its action, and record the turn in both the trajectory and
    the conversation."""
    action = parse_action(response)
    observation, reward, done = take_action(env, action, trajectory.final_reward)
    step = Turn(response=response, action=action, observation=observation, reward=float(reward), done=bool(done))
    trajectory.steps.append(step)
    if action is not None:
        # Env rewards are the current task score (ScienceWorld: score / 100, not a delta), so
        # the last env step's reward is the episode's; an invalid step (reward 0) changes no
        # state and must not erase a partial score reached before it.
        trajectory.final_reward = min(1.0, max(0.0, step.reward))
    trajectory.done = step.done
    messages.append({"role": "assistant", "content": response})
    messages.append({"role": "user", "content": observation})
    return step


def _start(
    index: int, env: "Env", task_id: int, prefix: Sequence[str] | None, max_turns: int
) -> _Live:
    """Reset the env for `task_id` and replay the prefix responses (revision protocol)."""
    first = env.reset(task_id)
    trajectory = Trajectory(env=env.name, task_id=task_id, instruction=env.instruction, first_observation=first)
    live = _Live(index=index, env=env, trajectory=trajectory, messages=opening_messages(env.instruction, first))
    for response in prefix or ():
        if trajectory.done or len(trajectory.steps) >= max_turns:
            break
        _apply(env, trajectory, live.messages, response)
    trajectory.prefix_len = len(trajectory.steps)
    return live


def run_episodes(
    policy: Policy,
    envs: EnvSource,
    task_ids: Sequence[int],
    settings: EpisodeSettings,
    prefixes: Sequence[Sequence[str] | None] | None = None,
    max_concurrency: int = 16,
    on_finish: Callable[[int, Trajectory], None] | None = None,
    progress: bool | str = True,
) -> list[Trajectory]:
    """Run one episode per task id, in lockstep: each turn makes ONE `policy.generate` call
    over all live episodes (batching is what makes evaluation fast on a GPU and on CPU).

    `envs`: a factory `() -> Env` (called up to `max_concurrency` times; those envs are closed
    at the end), a list of envs (one per concurrent episode; not closed), or a single env
    (sequential). An env is reused for the next pending task once its episode ends.
    `prefixes[i]`: responses replayed into episode i before the policy takes over (the
    revision-ability protocol); they count towards `settings.max_turns`.
    `on_finish(i, trajectory)` is called as soon as episode i ends (append-as-you-go logs).
    Sampling (temperature > 0) is seeded per episode and turn from `settings.seed`, so an
    episode's replies do not depend on which other episodes share its batch (or on a resume).
    Returns the trajectories in the order of `task_ids`."""
    max_turns, seed = settings.max_turns, settings.seed
    task_ids = list(task_ids)
    if prefixes is not None and len(prefixes) != len(task_ids):
        raise ValueError(f"prefixes has {len(prefixes)} entries, expected one per task id ({len(task_ids)})")
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, got {max_turns}")
    owned: list["Env"] = []
    factory: Callable[[], "Env"] | None = None
    pool: list["Env"] = []
    if isinstance(envs, (list, tuple)):
        pool = list(envs)
        if not pool:
            raise ValueError("run_episodes: empty list of environments")
    elif hasattr(envs, "reset") and not isinstance(envs, type):
        pool = [envs]  # type: ignore[list-item]
    elif callable(envs):
        factory = envs  # an env class or any zero-argument function
    else:
        raise TypeError(f"run_episodes: envs must be an Env, a list of Envs or a factory, got {type(envs).__name__}")
    limit = max(1, min(max_concurrency if factory else len(pool), len(task_ids) or 1))
    free: list["Env"] = list(pool[:limit])
    results: list[Trajectory | None] = [None] * len(task_ids)
    pending = list(range(len(task_ids)))[::-1]  # pop() from the end = task order
    live: list[_Live] = []
    bar = tqdm(total=len(task_ids), desc=progress if isinstance(progress, str) else "episodes",
               disable=not progress, leave=False)

    def finish(item: _Live) -> None:
        trajectory = item.trajectory
        trajectory.hit_turn_limit = not trajectory.done and len(trajectory.steps) >= max_turns
        results[item.index] = trajectory
        free.append(item.env)
        bar.update(1)
        if on_finish is not None:
            on_finish(item.index, trajectory)

    try:
        while pending or live:
            while pending and (free or (factory and len(owned) < limit)):
                if not free:
                    owned.append(factory())
                    free.append(owned[-1])
                index = pending.pop()
                item = _start(index, free.pop(), task_ids[index], prefixes[index] if prefixes else None, max_turns)
                if item.trajectory.done or len(item.trajectory.steps) >= max_turns:
                    finish(item)
                else:
                    live.append(item)
            if not live:
                continue
            seeds = [derive_seed(seed, item.env.name, item.trajectory.task_id, len(item.trajectory.steps))
                     for item in live]
            replies = policy.generate([item.messages for item in live], n=1, temperature=settings.temperature,
                                      max_new_tokens=settings.max_new_tokens, seeds=seeds)
            if len(replies) != len(live):
                raise RuntimeError(f"policy returned {len(replies)} reply lists for {len(live)} conversations")
            still: list[_Live] = []
            for item, samples in zip(live, replies):
                _apply(item.env, item.trajectory, item.messages, samples[0] if samples else "")
                if item.trajectory.done or len(item.trajectory.steps) >= max_turns:
                    finish(item)
                else:
                    still.append(item)
            live = still
    finally:
        bar.close()
        for env in owned:
            env.close()
    return results  # type: ignore[return-value]


def expert_trajectory(env: "Env", task_id: int) -> Trajectory:
    """The environment's expert playing `task_id`: each expert step as the agent's turn
    (`Thought: <its thought>\\nAction: <its action>`), stepped in the env until done."""
    env.reset(task_id)
    expert_steps = env.expert(task_id)
    first = env.reset(task_id)  # expert() may have moved the env
    trajectory = Trajectory(env=env.name, task_id=task_id, instruction=env.instruction, first_observation=first)
    for expert_step in expert_steps:
        observation, reward, done = env.step(expert_step.action)
        trajectory.steps.append(Turn(format_response(expert_step.thought, expert_step.action), expert_step.action,
                                     observation, float(reward), bool(done)))
        trajectory.final_reward, trajectory.done = float(reward), bool(done)
        if done:
            break
    return trajectory


def run_episode(
    policy: Policy,
    env: "Env",
    task_id: int,
    max_turns: int,
    temperature: float = 0.0,
    max_new_tokens: int = 128,
    prefix: Sequence[str] | None = None,
) -> Trajectory:
    """One episode (see run_episodes); `prefix` = responses replayed before the policy acts."""
    return run_episodes(policy, env, [task_id], EpisodeSettings(max_turns, temperature, max_new_tokens),
                        prefixes=[prefix] if prefix is not None else None, progress=False)[0]
