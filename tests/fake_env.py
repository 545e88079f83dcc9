"""Deterministic toy environments for tests, independent of the real environments.

- `CounterEnv` (the runner and evaluation): task t = "reach the number t" with actions
  `add <k>` / `look`. Reward = current / target (in [0, 1]) after each step; done with reward
  1 on reaching the target, done with reward 0 on overshooting. The expert adds 1 until it
  reaches the target.
- `NumberLine` (search and revision): walk to position t with `right` / `left`.
"""

from __future__ import annotations

from agentr_lib.envs.base import ExpertStep

INSTRUCTION = "Reach the target number. Actions: `add <k>` adds k; `look` shows the counter."


class CounterEnv:
    name = "counter"
    instruction = INSTRUCTION
    supports_snapshot = True
    instances = 0  # how many were built (factory/concurrency checks)

    def __init__(self) -> None:
        CounterEnv.instances += 1
        self.target = 0
        self.value = 0
        self.closed = False
        self.steps = 0

    def task_ids(self, split: str) -> list[int]:
        return list(range(1, 6)) if split == "test" else list(range(6, 20))

    def reset(self, task_id: int) -> str:
        self.target, self.value, self.steps = int(task_id), 0, 0
        return f"Task {task_id}: make the counter equal {task_id}. Counter: 0."

    def step(self, action: str) -> tuple[str, float, bool]:
        self.steps += 1
        parts = action.split()
        if parts[:1] == ["look"]:
            return f"Counter: {self.value}.", self.value / self.target, False
        if len(parts) == 2 and parts[0] == "add" and parts[1].lstrip("-").isdigit():
            self.value += int(parts[1])
            if self.value == self.target:
                return f"Counter: {self.value}. Done!", 1.0, True
            if self.value > self.target:
                return f"Counter: {self.value}. Overshot.", 0.0, True
            return f"Counter: {self.value}.", max(0.0, self.value / self.target), False
        return f"Nothing happens: {action!r} is not a valid action.", self.value / self.target, False

    def snapshot(self) -> tuple[int, int]:
        return (self.target, self.value)

    def restore(self, state: tuple[int, int]) -> None:
        self.target, self.value = state

    def expert(self, task_id: int) -> list[ExpertStep]:
        return [ExpertStep(thought=f"The counter is {i}; add one.", action="add 1") for i in range(task_id)]

    def close(self) -> None:
        self.closed = True


class NumberLine:
    """Walk from 0 to `task_id` with `right`/`left`; reaching it gives reward 1 and ends the
    episode; `fall` ends it with a negative reward. Snapshot = the position."""

    name = "numberline"
    instruction = "Reach the goal position."

    def __init__(self, supports_snapshot: bool = True, partial: bool = False):
        self.supports_snapshot = supports_snapshot
        self.partial = partial  # reward = current score max(pos, 0) / goal, as ScienceWorld's
        self.pos = 0
        self.goal = 0

    def task_ids(self, split: str) -> list[int]:
        return [1, 2, 3, 4]

    def reset(self, task_id: int) -> str:
        self.pos, self.goal = 0, task_id
        return f"You are at 0. Goal: {task_id}."

    def step(self, action: str) -> tuple[str, float, bool]:
        if action == "fall":
            return "You fell.", -1.0, True
        if action in ("left", "right"):
            self.pos += 1 if action == "right" else -1
            if self.pos == self.goal:
                return f"You reached {self.pos}.", 1.0, True
            return f"You are at {self.pos}.", max(self.pos, 0) / self.goal if self.partial else 0.0, False
        return "Nothing happens.", 0.0, False

    def snapshot(self) -> int:
        return self.pos

    def restore(self, state: int) -> None:
        self.pos = state

    def expert(self, task_id: int) -> list:
        return []

    def close(self) -> None:
        pass
