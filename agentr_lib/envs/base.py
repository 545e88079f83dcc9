"""The one protocol every environment follows, so that the agent, MCTS and evaluation
never special-case an environment.

Rewards are normalised to [0, 1] here (ScienceWorld's 0..100 score / 100); reports multiply
by 100 as the paper does. An action that cannot be parsed or executed never raises: it
returns an explanatory observation and reward 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ExpertStep:
    """One step of an expert demonstration: the thought the expert would say, then its action."""

    thought: str
    action: str


@runtime_checkable
class Env(Protocol):
    """A text environment. Task ids are ints (indices into the environment's task list)."""

    name: str
    #: How to act, in the style of the AgentGym prompts (first user turn of a conversation).
    instruction: str
    #: True when snapshot()/restore() are cheap; MCTS replays the action prefix otherwise.
    supports_snapshot: bool
    #: Where the tasks come from, for figure labels (e.g. "synthetic catalogue").
    data_mode: str
    #: Observation prefixes by which the environment says an action failed: the failures the
    #: agent can see (the verifier `value-seen` puts the signal only after one).
    failure_prefixes: tuple[str, ...]

    def task_ids(self, split: str) -> list[int]:
        """Deterministic task ids of the split ("train" or "test")."""

    def reset(self, task_id: int) -> str:
        """Start task `task_id`; returns the first observation."""

    def step(self, action: str) -> tuple[str, float, bool]:
        """Apply one action; returns (observation, reward in [0, 1], done)."""

    def snapshot(self) -> Any:
        """An opaque copy of the state (only when supports_snapshot)."""

    def restore(self, state: Any) -> None:
        """Return to a state produced by snapshot()."""

    def expert(self, task_id: int) -> list[ExpertStep]:
        """A demonstration that solves the task (planner, gold path, ...)."""

    def close(self) -> None:
        """Release external resources (a JVM, ...). Safe to call twice."""
