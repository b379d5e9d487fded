"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder holds ``model.safetensors`` (the whole CodebookModel state, codebook counters
included; shared weights such as tied embeddings handled by safetensors' save_model),
``optimizer.safetensors`` + the optimizer's non-tensor state in ``trainer_state.json``, and one
``rng-{rank}.safetensors`` per process, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn

from .atomic import atomic_file
from .errors import CodebookError

__all__ = [
    "UnreadableCheckpoint",
    "checkpoints",
    "latest_checkpoint",
    "load_checkpoint",
    "resume_checkpoint",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

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
    """Write one checkpoint; every process writes its RNG, the main process writes the rest.

    Each file is written under a temporary name and renamed into place, and ``trainer_state.json``
    (which marks a checkpoint as complete) comes last: a run killed mid-save leaves no torn file.
    """
    with atomic_file(folder / f"rng-{rank}.safetensors") as path:
        save_file(rng_state(generator), str(path))
    if is_main:
        with atomic_file(folder / "model.safetensors") as path:
            save_model(model, str(path))
        tensors, meta = _split_optimizer(optimizer.state_dict())
        with atomic_file(folder / "optimizer.safetensors") as path:
            save_file(tensors, str(path))
        with atomic_file(folder / STATE_JSON) as path:
            path.write_text(json.dumps({**trainer_state, "optimizer": meta}, indent=1))
    return folder


class UnreadableCheckpoint(CodebookError):
    """A checkpoint whose files are missing, truncated or corrupt (as opposed to one for another model)."""


def load_checkpoint(
    folder: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rank: int = 0,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer and RNG from ``folder``; returns the trainer state (step, history, ...).

    Every file is read before anything is restored, so an unreadable checkpoint changes nothing.
    """
    folder = Path(folder)
    meta_path = folder / STATE_JSON
    if not meta_path.exists():
        raise UnreadableCheckpoint(f"{str(folder)!r} is not a training checkpoint: {STATE_JSON} is missing.")
    try:
        meta = json.loads(meta_path.read_text())
        optimizer_tensors = load_file(str(folder / "optimizer.safetensors"))
        rng_path = folder / f"rng-{rank}.safetensors"
        rng = load_file(str(rng_path if rng_path.exists() else folder / "rng-0.safetensors"))
        # last, and safe: load_model reads the whole file (a truncated one fails) before it restores anything
        missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False)
    except (json.JSONDecodeError, SafetensorError, OSError, ValueError) as err:
        raise UnreadableCheckpoint(
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


def checkpoints(folder: str | Path) -> list[Path]:
    """The complete ``step-N`` checkpoints under folder, newest first."""
    root = Path(folder)
    steps = sorted(
        (
            (int(p.name.split("-", 1)[1]), p)
            for p in root.glob("step-*")
            if p.name.split("-", 1)[1].isdigit() and (p / STATE_JSON).exists()
        ),
        reverse=True,
    )
    return [path for _, path in steps]


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest ``step-N`` checkpoint under folder, or None."""
    found = checkpoints(folder)
    return found[0] if found else None


def resume_checkpoint(
    folder: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rank: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Restore the newest checkpoint that reads; a torn or corrupt newer one is skipped with a warning."""
    found = checkpoints(folder)
    if not found:
        raise CodebookError(f"{str(folder)!r} holds no step-N checkpoint to resume from; train without resume.")
    skipped = []
    for path in found:
        try:
            state = load_checkpoint(path, model, optimizer, rank, generator)
        except UnreadableCheckpoint as err:
            skipped.append(f"{path.name} ({err})")
            continue
        if skipped:
            warnings.warn(
                f"resumed from {path.name} (step {state['step']}), not the newest: could not read {'; '.join(skipped)}",
                stacklevel=2,
            )
        return path, state
    raise CodebookError(f"no checkpoint in {str(folder)!r} could be read: {'; '.join(skipped)}. Train without resume.")
