"""The one place to ask for prompt text: per-environment instructions, the verifier prompt
(first-error identification, docs/design.md "Revision trajectories") and the revision-signal pool.

The instructions themselves live next to each environment (`agentr_lib/envs/<name>`), which
knows its own action syntax; `instruction_for` re-exports them lazily (importing an env
module only when asked, so importing this module never starts a JVM and never creates an
import cycle with the env modules).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import import_module

from .agent import Turn
from .llm.base import Message

# --------------------------------------------------------------------------------------
# Environment instructions
# --------------------------------------------------------------------------------------


def instruction_for(env_name: str) -> str:
    """The instruction (first user turn) of environment `env_name`, without building the env.

    Looked up, in order: the env class's `instruction` class attribute (a str), then a
    module-level `INSTRUCTION` or `<NAME>_INSTRUCTION` constant of the env module (or package)."""
    from .envs import REGISTRY

    if env_name not in REGISTRY:
        raise ValueError(f"unknown environment {env_name!r}; expected one of {sorted(REGISTRY)}")
    module_name, class_name = REGISTRY[env_name].split(":")
    module = import_module(module_name)
    value = getattr(getattr(module, class_name, None), "instruction", None)
    if isinstance(value, str) and value.strip():
        return value
    names = ("INSTRUCTION", f"{env_name.upper()}_INSTRUCTION")
    names += tuple(sorted(n for n in vars(module) if n.endswith("_INSTRUCTION") and n not in names))
    for name in names:
        value = getattr(module, name, None)
        if isinstance(value, str) and value.strip():
            return value
    raise LookupError(
        f"{module.__file__}: no instruction found for {env_name!r}; expected a str class attribute "
        f"{class_name}.instruction or a module constant INSTRUCTION / {env_name.upper()}_INSTRUCTION"
    )


# --------------------------------------------------------------------------------------
# Verifier prompt (the `model` verifier of revision construction)
# --------------------------------------------------------------------------------------

JUDGMENTS: tuple[str, ...] = ("Good", "Bad", "Uncertain")

VERIFIER_SYSTEM = (
    "You review the work of an agent acting in a text environment. You are shown the task "
    "instructions, the task, the steps the agent has taken so far, and then one more step: the "
    "agent's latest action and what the environment answered. Decide whether this latest action "
    "was a good move towards completing the task.\n"
    "- Good: it makes progress or gathers information that is clearly needed.\n"
    "- Bad: it is a mistake: invalid, irrelevant, repeats something that already failed, "
    "undoes progress, or leads away from the goal.\n"
    "- Uncertain: you cannot tell from what is shown.\n"
    "First explain your reasons in a few sentences. Then end with one line exactly of the form\n"
    "Judgment: Good\n"
    "or\n"
    "Judgment: Bad\n"
    "or\n"
    "Judgment: Uncertain"
)


def _render_step(number: int, step: Turn) -> str:
    action = step.action if step.action is not None else "(no valid action)"
    return f"Step {number}\nAction: {action}\nObservation: {step.observation}"


def verifier_messages(
    instruction: str, first_observation: str, steps_so_far: Sequence[Turn], step: Turn, omitted: int = 0
) -> list[Message]:
    """The chat asking the model to judge `step` given the task and `steps_so_far`.

    One user turn (system text included, since small chat templates may lack a system role);
    the reply is parsed with `parse_judgment`. History shows actions and observations, not the
    agent's thoughts: the judge should weigh what was done, not what was claimed. `omitted`:
    that many earlier steps were left out before `steps_so_far` (to fit a context budget);
    the history says so and the numbering goes on from them."""
    history = "\n\n".join(_render_step(i, s) for i, s in enumerate(steps_so_far, start=omitted + 1))
    if omitted:
        history = f"({omitted} earlier steps not shown)\n\n" + history
    history = history or "(no steps yet)"
    content = (
        f"{VERIFIER_SYSTEM}\n\n"
        f"## Instructions the agent was given\n{instruction}\n\n"
        f"## Task\n{first_observation}\n\n"
        f"## Steps so far\n{history}\n\n"
        f"## Step to judge\n{_render_step(omitted + len(steps_so_far) + 1, step)}\n\n"
        "Was this last action Good, Bad or Uncertain? Give your reasons, then the Judgment line."
    )
    return [{"role": "user", "content": content}]


_JUDGMENT_RE = re.compile(r"judge?ment[\s*_:\-]*(good|bad|uncertain)\b", re.IGNORECASE)
#: The prompt's own option list ("Judgment: Good\nor\nJudgment: Bad ..."), copied back by a small
#: model (SmolLM2-135M did: "Thought: Good\nor\nJudgment: Good\nor\nJudgment: Uncertain"): not a choice.
_ECHOED_OPTIONS_RE = re.compile(
    r"(?:judge?ment[\s*_:\-]*(?:good|bad|uncertain)\b[\s*]*\n\s*or\s*\n\s*)+judge?ment[\s*_:\-]*(?:good|bad|uncertain)\b",
    re.IGNORECASE)


def judgment_in(text: str | None) -> str | None:
    """The last `Judgment: Good|Bad|Uncertain` in `text` (case-insensitive, "Judgement" too),
    or None when the reply has no judgment line (unparsed). The prompt's option list echoed
    back (judgment lines joined by "or" lines) is no judgment: its last option would otherwise
    be read as the verdict (always "Uncertain")."""
    matches = _JUDGMENT_RE.findall(_ECHOED_OPTIONS_RE.sub(" ", text or ""))
    return matches[-1].capitalize() if matches else None


def parse_judgment(text: str | None) -> str:
    """`judgment_in`, with an unparsed reply counted as "Uncertain" (what the verifier acts on)."""
    return judgment_in(text) or "Uncertain"


# --------------------------------------------------------------------------------------
# Revision signals
# --------------------------------------------------------------------------------------

#: Short first-person sentences that admit a mistake and resolve to fix it (our own words).
#: The splice inserts `Thought: <signal>\nAction: wait` where the first error was found.
REVISION_SIGNALS: tuple[str, ...] = (
    "I realize my approach was flawed. I need to revise it.",
    "That last step was a mistake. Let me go back and fix it.",
    "I took a wrong turn here. I should rethink my plan.",
    "This is not working as I intended. I will correct my course.",
    "My previous actions were wrong. I need to reconsider what to do.",
    "I made an error in my reasoning. Let me start over from a better plan.",
    "Looking back, that choice did not help. I will try a different approach.",
    "I was heading in the wrong direction. I should change my strategy.",
    "That did not bring me closer to the goal. I need to reassess and revise.",
    "I see my mistake now. Let me fix it before going further.",
)
