"""The shape of a conversation, shared by the agent layer and the model backends.

An episode's conversation (AgentGym style) opens with three turns: user = the environment's
instruction, assistant = "Ok.", user = the first observation; then alternating assistant
`Thought: ...\\nAction: <action>` and user observation. This module depends on nothing else
in the package, so a backend (llm/hf.py, llm/vllm.py) can fit a conversation into its
context without importing the agent, and training (data.py) truncates exactly as inference
does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

#: The acknowledgement that answers the instruction (a constant turn: never trained).
ACK = "Ok."
#: The opening turns (instruction, "Ok.", first observation): never dropped by truncation.
N_OPENING = 3


def opening_messages(instruction: str, first_observation: str) -> list[dict]:
    """The three turns every episode starts with."""
    return [
        {"role": "user", "content": instruction},
        {"role": "assistant", "content": ACK},
        {"role": "user", "content": first_observation},
    ]


def from_first_observation(messages: Sequence[dict]) -> list[dict]:
    """The conversation as a reader follows it: the instruction and the "Ok." left out, from
    the first observation (the task) on."""
    return list(messages[N_OPENING - 1:])


def truncate_messages(
    messages: list[dict], count_tokens: Callable[[list[dict]], int], budget: int | None
) -> list[dict]:
    """Drop the oldest (assistant, observation) pairs after the first task observation until
    `count_tokens(messages) <= budget`.

    Why: a long episode must still fit the model's context; the instruction and the task
    (first observation) are what the model cannot act without, and the latest turns are
    what it acts on, so the middle goes first (as AgentGym does). The last pair (or a trailing
    lone assistant turn) is always kept, so the result may still exceed a tiny budget.
    Returns a new list; `messages` is not modified."""
    if budget is None or count_tokens(messages) <= budget:
        return list(messages)
    head, tail = list(messages[:N_OPENING]), list(messages[N_OPENING:])
    # Binary search over the number of dropped pairs (tokens shrink as more are dropped):
    # O(log turns) renders instead of one per dropped pair.
    low, high = 0, max(0, (len(tail) - 1) // 2)  # high: keeps the last pair / lone turn
    while low < high:
        middle = (low + high) // 2
        if count_tokens(head + tail[2 * middle:]) <= budget:
            high = middle
        else:
            low = middle + 1
    return head + tail[2 * low:]
