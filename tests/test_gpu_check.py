"""benchmarks/gpu_check.py (the script for a GPU machine) runs its checks on the CPU with
--device cpu: LoRA SFT through the hf training backend, base + adapter through the hf sampler."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from micro_model import build_micro_model

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_on_the_cpu(tmp_path):
    model = build_micro_model(tmp_path / "micro")
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--model",
                           str(model), "--rows", "16", "--steps", "6", "--batch-size", "4", "--conversations", "4",
                           "--max-new-tokens", "8", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["device"] == "cpu" and all(results["checks"].values()), results["checks"]
    assert results["sft"]["steps"] == 6 and results["sft"]["tokens_per_s"] > 0
    assert results["generation"]["greedy_tokens_per_s"] > 0 and "LoRA SFT" in done.stdout
