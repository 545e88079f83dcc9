"""The behaviour-cloning data of the embedded models: the environments' expert episodes on
training goals only (agent.expert_trajectory), plus the phrase book (the revision turn's words,
outside any task) and the judge book (the model verifier's prompt answered Good/Bad).

Why these and no more: no real instruct model can be downloaded here, so the embedded model
learns the agent format from the experts; what an instruct model would know before Agent-R
(how to say a mistake was made, how to judge a step) comes from the two books."""

from __future__ import annotations

import random
import sys
from collections.abc import Sequence
from typing import Any

from ..agent import NO_ACTION_OBSERVATION, REVISION_ACTION, Turn, expert_trajectory, opening_messages
from ..models import TinySpec
from ..prompts import REVISION_SIGNALS, verifier_messages


def make_env(name: str, seed: int | None = None) -> Any:
    """The env `name`, with distractor `seed` where the env takes one (TextCraft's; the others
    have a single layout per task)."""
    from ..envs import make_env as make

    if seed is None:
        return make(name)
    try:
        return make(name, seed=seed)
    except TypeError:
        return make(name)


def expert_episode(env: Any, task_id: int, first_observation: str | None = None, thoughts: bool = True) -> dict | None:
    """The expert's episode on `task_id` (agent.expert_trajectory) as a training
    conversation (all assistant turns trained) with its final reward. `first_observation`
    replaces the reset text shown to the model (the episode itself is unchanged); without
    `thoughts` each reply is its `Action:` line alone."""
    trajectory = expert_trajectory(env, task_id)
    messages = opening_messages(env.instruction, first_observation if first_observation is not None
                                else trajectory.first_observation)
    for turn in trajectory.steps:
        messages.append({"role": "assistant", "content": turn.response if thoughts else f"Action: {turn.action}"})
        messages.append({"role": "user", "content": turn.observation})
    if messages[-1]["role"] == "user" and len(messages) > 3:
        messages.pop()  # the final observation is never trained; keep the episode ending on the agent
    for message in messages:
        message["loss"] = message["role"] == "assistant"
    reward = trajectory.steps[-1].reward if trajectory.steps else 0.0
    return {"messages": messages, "reward": float(reward), "done": trajectory.done}


#: What the user asks in a phrase-book conversation (our words; never a task, never the game).
PHRASE_BOOK_REQUESTS: tuple[str, ...] = (
    "Say in one sentence that your last step was a mistake and that you will change your plan.",
    "How would you admit an error and decide to fix it?",
    "Tell me that you went wrong and will try again.",
)


def phrase_book(repeats: int) -> list[dict]:
    """Conversations that teach the revision turn's words (`prompts.REVISION_SIGNALS` and the
    revision action), never the turn itself: a user asks for a sentence admitting a mistake and
    the assistant says one. An instruct model knows these words before Agent-R; the tiny model
    knows only environment text. No task, no game state, no `Thought:`/`Action:` lines, so
    the base model still never revises in an episode (measured: 0 revision turns at test)."""
    rows = []
    for index, signal in enumerate(REVISION_SIGNALS):
        request = PHRASE_BOOK_REQUESTS[index % len(PHRASE_BOOK_REQUESTS)]
        messages = [{"role": "user", "content": request, "loss": False},
                    {"role": "assistant", "content": f"{signal} I {REVISION_ACTION} and look again.", "loss": True}]
        rows += [{"messages": messages, "env": "phrase_book", "task_id": index}] * repeats
    return rows


#: The judge-book replies: the judgment line alone (`prompts.judgment_in` parses it; a reason
#: first cost the micro model the line: unparsed at 24 new tokens).
JUDGE_BOOK_REPLIES: dict[str, str] = {"Good": "Judgment: Good", "Bad": "Judgment: Bad"}


def judge_book(env: Any, task_id: int, repeats: int, steps: int = 3, history: int = 2) -> list[dict]:
    """Verifier conversations (`prompts.verifier_messages`, the model verifier's prompt) over
    the expert's episode on `task_id`, over its first `steps` steps: each expert step judged
    Good, and a reply with no action in its place judged Bad. Why: a micro model never writes
    a judgment line of its own, so the GPU rehearsal's verdicts were all unparsed and Good/Bad
    parsing never ran; an instruct model can already answer this prompt. At most `history`
    earlier steps are shown (the micro model's context is 2,048 tokens of a 320-token vocabulary)."""
    trajectory = expert_trajectory(env, task_id)
    invalid = Turn("", None, NO_ACTION_OBSERVATION, 0.0, False)
    rows = []
    for index, step in enumerate(trajectory.steps[:steps]):
        shown = trajectory.steps[max(0, index - history):index]
        for verdict, judged in (("Good", step), ("Bad", invalid)):
            prompt = verifier_messages(env.instruction, trajectory.first_observation, shown, judged,
                                       omitted=index - len(shown))
            messages = [{**prompt[0], "loss": False},
                        {"role": "assistant", "content": JUDGE_BOOK_REPLIES[verdict], "loss": True}]
            rows += [{"messages": messages, "env": "judge_book", "task_id": int(task_id)}] * repeats
    return rows


def _look_alike_goals(env: Any, ids: Sequence[int]) -> dict[int, list[int]]:
    """For each goal, the other train goals sharing a word with its name (diamond boots for
    diamond helmet), or all of them when none does. Why: the model copied the goal's first word
    and let memory finish the name; a look-alike in the same list makes it read the whole name."""
    words = {i: set(env.goal_name(i).split()) for i in ids}
    alike: dict[int, list[int]] = {}
    for task_id in ids:
        others = [i for i in ids if i != task_id]
        alike[task_id] = [i for i in others if words[task_id] & words[i]] or others
    return alike


def demonstrated_ids(env: Any, held_out: Sequence[str]) -> list[int]:
    """The env's train ids minus every `held_out` split it has."""
    excluded: set[int] = set()
    for split in held_out:
        try:
            excluded |= set(env.task_ids(split))
        except ValueError:  # the env has no such split: nothing of it to hold out
            continue
    return [task_id for task_id in env.task_ids("train") if task_id not in excluded]


def collect_demos(spec: TinySpec, progress: bool = True, stage: int = 0) -> tuple[list[dict], dict]:
    """Expert demonstrations on TRAIN task ids only, per env; returns (rows, per-env stats).

    TextCraft: every train goal under `textcraft_seeds` distractor seeds (the env's `seed`
    argument, when it has one). Other envs: each train task's expert path, repeated
    `other_env_repeats` times in the mix."""
    from tqdm.auto import tqdm

    rows: list[dict] = []
    stats: dict[str, dict] = {}
    judge_rows = 0
    for name in spec.envs:
        k = spec.textcraft_seeds
        seeds = list(range(stage * k, (stage + 1) * k)) if name == "textcraft" else [None]
        kept = failed = 0
        look_alikes: dict[int, list[int]] | None = None  # the same train ids under every seed
        for seed in seeds:
            env = make_env(name, seed)
            try:
                ids = demonstrated_ids(env, spec.held_out)
                if spec.max_train_tasks is not None:
                    ids = ids[: spec.max_train_tasks]
                pick = random.Random(f"companions-{spec.seed}-{seed}")
                if name == "textcraft" and spec.textcraft_companion_share > 0 and look_alikes is None:
                    look_alikes = _look_alike_goals(env, ids)
                for task_id in tqdm(ids, desc=f"demos {name} seed {seed}", disable=not progress, leave=False):
                    first = None
                    if name == "textcraft" and pick.random() < spec.textcraft_companion_share:
                        companion = pick.choice(look_alikes[task_id])
                        first = env.observation(task_id, companions=(companion,))
                    try:
                        episode = expert_episode(env, task_id, first, thoughts=spec.thoughts)
                    except Exception as err:  # noqa: BLE001 -- a broken expert path is skipped and counted
                        print(f"[build] {name} task {task_id}: expert failed ({type(err).__name__}: {err})", file=sys.stderr)
                        episode = None
                    if episode is None or episode["reward"] <= 0:
                        failed += 1
                        continue
                    repeats = 1 if name == "textcraft" else spec.other_env_repeats
                    for _ in range(repeats):
                        rows.append({"messages": episode["messages"], "env": name, "task_id": int(task_id)})
                    kept += 1
                    if spec.judge_book_repeats and seed == seeds[0]:
                        judged = judge_book(env, task_id, spec.judge_book_repeats)
                        rows += judged
                        judge_rows += len(judged)
            finally:
                env.close()
        stats[name] = {"episodes": kept, "expert_failures": failed, "seeds": len(seeds)}
    if judge_rows:
        stats["judge_book"] = {"episodes": judge_rows, "expert_failures": 0, "seeds": 0}
    if spec.phrase_book_repeats:
        book = phrase_book(spec.phrase_book_repeats)
        rows += book
        stats["phrase_book"] = {"episodes": len(book), "expert_failures": 0, "seeds": 0}
    random.Random(spec.seed if stage == 0 else f"{spec.seed}-{stage}").shuffle(rows)
    return rows, stats

