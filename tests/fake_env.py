"""A deterministic toy environment for tests of the runner and evaluation, independent of
the real environments: task t = "reach the number t" with actions `add <k>` / `look`.

Reward = current / target (in [0, 1]) after each step; done with reward 1 on reaching the
target, done with reward 0 on overshooting. The expert adds 1 until it reaches the target.
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
