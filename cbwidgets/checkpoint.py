"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder holds ``model.safetensors`` (the whole CodebookModel state, codebook counters
included; shared weights such as tied embeddings handled by safetensors' save_model),
``optimizer.safetensors`` + the optimizer's non-tensor state in ``trainer_state.json``, and one
``rng-{rank}.safetensors`` per process, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn

from .errors import CodebookError

__all__ = ["latest_checkpoint", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]

STATE_JSON = "trainer_state.json"


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            if isinstance(value, Tensor):
                tensors[f"{index}/{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "plain": plain}


def _join_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    for index, slots in meta["plain"].items():
        state.setdefault(int(index), {}).update(slots)
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state(generator: torch.Generator | None = None) -> dict[str, Tensor]:
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state()
    if generator is not None:
        out["data"] = generator.get_state()
    return out


def set_rng_state(state: dict[str, Tensor], generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    if generator is not None and "data" in state:
        generator.set_state(state["data"])


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    rank: int = 0,
    is_main: bool = True,
    generator: torch.Generator | None = None,
) -> Path:
    """Write one checkpoint; every process writes its RNG, the main process writes the rest."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(rng_state(generator), str(folder / f"rng-{rank}.safetensors"))
    if is_main:
        save_model(model, str(folder / "model.safetensors"))
        tensors, meta = _split_optimizer(optimizer.state_dict())
        save_file(tensors, str(folder / "optimizer.safetensors"))
        (folder / STATE_JSON).write_text(json.dumps({**trainer_state, "optimizer": meta}, indent=1))
    return folder


def load_checkpoint(
    folder: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rank: int = 0,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer and RNG from ``folder``; returns the trainer state (step, history, ...)."""
    folder = Path(folder)
    meta_path = folder / STATE_JSON
    if not meta_path.exists():
        raise CodebookError(f"{str(folder)!r} is not a training checkpoint: {STATE_JSON} is missing.")
    try:
        meta = json.loads(meta_path.read_text())
        missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False)
        optimizer_tensors = load_file(str(folder / "optimizer.safetensors"))
        rng_path = folder / f"rng-{rank}.safetensors"
        rng = load_file(str(rng_path if rng_path.exists() else folder / "rng-0.safetensors"))
    except (json.JSONDecodeError, SafetensorError, OSError, ValueError) as err:
        raise CodebookError(
            f"checkpoint {str(folder)!r} is unreadable or corrupt ({err}); use an earlier one."
        ) from None
    if missing or unexpected:
        raise CodebookError(
            f"checkpoint {str(folder)!r} does not fit this model: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}; attach the same codebooks before resuming."
        )
    optimizer.load_state_dict(_join_optimizer(optimizer_tensors, meta.pop("optimizer")))
    set_rng_state(rng, generator)
    return dict(meta)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest ``step-N`` checkpoint under folder, or None."""
    root = Path(folder)
    steps = sorted(
        (int(p.name.split("-", 1)[1]), p)
        for p in root.glob("step-*")
        if p.name.split("-", 1)[1].isdigit() and (p / STATE_JSON).exists()
    )
    return steps[-1][1] if steps else None
