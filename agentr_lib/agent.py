"""Conversations in the AgentGym style, action parsing, and trajectories.

A conversation is: user = the environment's instruction; assistant = "Ok."; user = the first
observation; then alternating assistant `Thought: ...\\nAction: <action>` and user observation.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from .llm.base import Message

ACK = "Ok."
NO_ACTION_OBSERVATION = (
    "Invalid response: no action found. Reply with 'Thought: <your reasoning>' and then "
    "'Action: <one action>' on its own line."
)

_ACTION_RE = re.compile(r"action\s*:", re.IGNORECASE)
_NUMBERING_RE = re.compile(r"^\s*(?:\(?\d+[.):]|[-*\u2022])\s+")


def parse_action(response: str) -> str | None:
    """The action is the text after the last `Action:`, first line only, with leading
    numbering/bullets, surrounding quotes/backticks and trailing punctuation stripped.
    Returns None when there is no action (an invalid step, never an exception)."""
    if not response:
        return None
    matches = list(_ACTION_RE.finditer(response))
    if not matches:
        return None
    tail = response[matches[-1].end():].strip()
    line = tail.splitlines()[0] if tail else ""
    line = _NUMBERING_RE.sub("", line).strip().strip("`\"'").strip()
    line = line.rstrip(" .,;:!?").strip()
    return line or None


def format_response(thought: str, action: str) -> str:
    return f"Thought: {thought}\nAction: {action}"


def opening_messages(instruction: str, first_observation: str) -> list[Message]:
    """The three turns every episode starts with."""
    return [
        {"role": "user", "content": instruction},
        {"role": "assistant", "content": ACK},
        {"role": "user", "content": first_observation},
    ]


@dataclass
class Step:
    """One agent turn: what the model said, what was executed, what came back."""

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
    steps: list[Step] = field(default_factory=list)
    final_reward: float = 0.0
    done: bool = False
    hit_turn_limit: bool = False

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
        fields["steps"] = [Step(**step) for step in record.get("steps", [])]
        return cls(**fields)
