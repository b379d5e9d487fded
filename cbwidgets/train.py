"""Training codebooks (and optionally the base model) with accelerate.

The same call runs on a CPU, a GPU, or several processes started with ``accelerate launch`` or
``torchrun``: each process takes an equal shard of every global batch, so the loss curve does not
depend on how many processes share the work. Batches are a pure function of the step, which makes
resuming exact: a checkpoint stores the step, the model, the optimiser and the RNG states.

Parameters are collected after the codebooks are attached. Codebook parameters get no weight
decay; the base model can be frozen (``freeze_base=True``) or finetuned at ``lr * model_lr_scale``.
``lazy_codes=True`` updates only the code vectors a step chose (see ``cbwidgets.lazy_adamw``): the
same AdamW step for those, and none for the rest, which with large codebooks is most of the
optimiser's work.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from .checkpoint import load_checkpoint, resume_checkpoint, save_checkpoint
from .errors import CodebookError, check_choice, check_flag, check_positive_int, check_positive_real
from .lazy_adamw import LazyRowsAdamW
from .model import CodebookModel

__all__ = ["Callback", "Data", "TrainConfig", "TrainResult", "batch_for_step", "train"]

Data = Tensor | Callable[[int, int], Tensor]
Callback = Callable[[dict[str, Any]], None]


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    model_lr_scale: float = 1.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    reconstruction_weight: float = 1.0
    freeze_base: bool = False
    lazy_codes: bool = False  # codes no token chose keep their value and moments (lazy Adam)
    warmup_steps: int = 0
    grad_clip: float | None = 1.0
    mixed_precision: str = "no"  # "no", "bf16", "fp16"
    log_every: int = 10
    checkpoint_every: int | None = None
    checkpoint_dir: str | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        self.checkpoint_every = check_positive_int("checkpoint_every", self.checkpoint_every, allow_none=True)
        for name in ("freeze_base", "lazy_codes", "progress"):
            setattr(self, name, check_flag(name, getattr(self, name)))
        self.lr = check_positive_real("lr", self.lr, "1e-3")  # "1e-3" from a text box too: refused by name
        check_choice("mixed_precision", self.mixed_precision, ("no", "bf16", "fp16"))
        if self.checkpoint_every is not None and not self.checkpoint_dir:
            raise CodebookError("checkpoint_every is set but checkpoint_dir is not; say where checkpoints go.")


@dataclass
class TrainResult:
    history: pd.DataFrame  # one row per logged step
    step: int
    checkpoint: Path | None


def batch_for_step(data: Data, step: int, batch_size: int, seed: int) -> Tensor:
    """The global batch of one step: a pure function of (data, step, seed), so resuming is exact."""
    if callable(data):
        return data(step, batch_size)
    n = data.shape[0]
    if n < batch_size:
        raise CodebookError(f"the data has {n} sequences, fewer than batch_size={batch_size}; lower batch_size.")
    per_epoch = n // batch_size
    epoch, index = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return data[order[index * batch_size : (index + 1) * batch_size]]


def _param_groups(model: CodebookModel, config: TrainConfig) -> list[dict[str, Any]]:
    codebook = [p for p in model.codebook_parameters() if p.requires_grad]
    base = [p for p in model.model.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [
        {"params": codebook, "weight_decay": 0.0, "lr": config.lr, "name": "codebooks", "lazy_rows": config.lazy_codes}
    ]
    if base:
        model_lr = config.lr * config.model_lr_scale
        decay = [p for p in base if p.dim() >= 2]
        no_decay = [p for p in base if p.dim() < 2]
        groups.append({"params": decay, "weight_decay": config.weight_decay, "lr": model_lr, "name": "model"})
        groups.append({"params": no_decay, "weight_decay": 0.0, "lr": model_lr, "name": "model_no_decay"})
    return [g for g in groups if g["params"]]


def _lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10 % of the peak."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _accelerator(mixed_precision: str) -> Any:
    """An Accelerator with this precision, even when an earlier train() in the process used another.

    accelerate keeps one process-wide AcceleratorState and refuses a second precision, which would
    stop a notebook user from training once in float32 and then in bf16. Resetting that state (the
    process group, kept in PartialState, is left alone) lets each call choose.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state and AcceleratorState().mixed_precision != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=mixed_precision, cpu=not torch.cuda.is_available())


def _check_data(model: CodebookModel, data: Data) -> None:
    if callable(data):
        return
    if not isinstance(data, Tensor) or data.dim() != 2 or data.is_floating_point():
        raise CodebookError(
            "training data must be a LongTensor of token ids (sequences, tokens), or a function "
            "(step, batch_size) -> such a tensor."
        )
    model.as_input_ids(data[:1])  # range and context checks, with their messages


def train(
    model: CodebookModel,
    data: Data,
    config: TrainConfig | None = None,
    callbacks: Sequence[Callback] = (),
    resume: str | Path | bool | None = None,
) -> TrainResult:
    """Train ``model`` on ``data``; ``resume=True`` continues from the newest checkpoint in checkpoint_dir.

    With no codebooks attached, or inside ``model.codebooks_disabled()``, this trains the base
    model alone (the first phase of the usual recipe: base model, k-means, then joint finetuning).

    ``callbacks`` receive a metrics dict every ``log_every`` steps (main process only): step, loss,
    lm_loss, reconstruction, ``reconstruction/<site>``, used_share (codes hit since the last log),
    dead, revived, lr, seconds. A callback with a ``finish(error)`` method hears when training ends:
    ``error`` is None, or the exception that stopped it (KeyboardInterrupt when the user stopped the
    cell), so a live view can say where it stopped instead of looking frozen.
    """
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    _check_data(model, data)
    accelerator = _accelerator(config.mixed_precision)
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.batch_size % world:
        raise CodebookError(
            f"batch_size={config.batch_size} does not split evenly over {world} processes; use a multiple of {world}."
        )
    frozen = [p for p in model.model.parameters() if p.requires_grad] if config.freeze_base else []
    for p in frozen:
        p.requires_grad_(False)
    failed: BaseException | None = None
    try:
        torch.manual_seed(config.seed)
        optimizer = LazyRowsAdamW(
            _param_groups(model, config), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        base_lrs = [g["lr"] for g in optimizer.param_groups]
        wrapped, optimizer = accelerator.prepare(model.to(accelerator.device), optimizer)
        start, history, checkpoint = 0, [], None
        if resume is True:  # the newest checkpoint that reads (a torn newer one is skipped, with a warning)
            _, state = resume_checkpoint(config.checkpoint_dir or ".", model, optimizer, rank)
        elif resume:
            state = load_checkpoint(Path(resume), model, optimizer, rank)
        if resume:
            start, history = int(state["step"]), list(state["history"])
            for group in optimizer.param_groups:  # a loaded state brings its run's setting back; this run's holds
                if group.get("name") == "codebooks":
                    group["lazy_rows"] = config.lazy_codes
        sync = (lambda t: accelerator.reduce(t, reduction="sum"), accelerator.gather) if world > 1 else (None, None)
        model.train()
        window = _Window.start(model)
        started = time.perf_counter()
        bar = tqdm(
            total=config.steps,
            initial=start,
            disable=not (config.progress and accelerator.is_main_process),
            desc="training",
            unit="step",
        )
        for step in range(start, config.steps):
            for group, base_lr in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base_lr * _lr_factor(step, config)
            batch = batch_for_step(data, step, config.batch_size, config.seed)
            shard = batch.chunk(world)[rank].to(accelerator.device)
            out = wrapped(shard, labels=shard)
            recon = out.reconstruction_loss  # None with no codebooks, or under codebooks_disabled()
            if recon is None:
                recon = torch.zeros((), device=out.loss.device)
            loss = out.loss + config.reconstruction_weight * recon
            accelerator.backward(loss)
            if config.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            window.add(loss, out.loss, recon, out.reconstruction, model.end_training_step(*sync))
            bar.update(1)
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                metrics = _metrics(model, accelerator, done, window, optimizer, started)
                history.append(metrics)
                bar.set_postfix(_bar_figures(metrics, codebooks_ran=bool(window.per_site)))
                if accelerator.is_main_process:
                    for callback in callbacks:
                        callback(metrics)
                window = _Window.start(model)
            if config.checkpoint_every and config.checkpoint_dir and (done % config.checkpoint_every == 0):
                checkpoint = save_checkpoint(
                    Path(config.checkpoint_dir) / f"step-{done}",
                    model,
                    optimizer,
                    {"step": done, "history": history, "config": asdict(config)},
                    rank,
                    accelerator.is_main_process,
                )
                accelerator.wait_for_everyone()
        bar.close()
    except BaseException as err:
        failed = err
        raise
    finally:
        for p in frozen:
            p.requires_grad_(True)
        if accelerator.is_main_process:
            _finish(callbacks, failed)
    model.eval()
    return TrainResult(pd.DataFrame(history), config.steps, checkpoint)


def _finish(callbacks: Sequence[Callback], failed: BaseException | None) -> None:
    for callback in callbacks:
        finish = getattr(callback, "finish", None)
        if callable(finish):
            finish(failed)


@dataclass
class _Window:
    """Sums over the steps since the last log, and the code hits as they stood then."""

    hits_at_start: dict[str, Tensor]
    steps: int = 0
    loss: float = 0.0
    lm: float = 0.0
    rec: float = 0.0
    revived: int = 0
    per_site: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, model: CodebookModel) -> _Window:
        return cls({name: cb.hits.clone() for name, cb in model.attached.items()})

    def add(self, loss: Tensor, lm: Tensor, rec: Tensor, per_site: dict[str, Tensor], revived: int) -> None:
        self.steps += 1
        self.loss += float(loss.detach())
        self.lm += float(lm.detach())
        self.rec += float(rec.detach())
        self.revived += revived
        for site, value in per_site.items():
            self.per_site[site] = self.per_site.get(site, 0.0) + float(value.detach())


def _bar_figures(metrics: dict[str, Any], codebooks_ran: bool) -> dict[str, str]:
    """What the progress bar shows: the LM loss (the figure a run reports at its end) and, only while
    codebooks run, their reconstruction and the share of codes used."""
    figures = {"lm_loss": f"{metrics['lm_loss']:.3f}"}
    if codebooks_ran:
        figures["recon"] = f"{metrics['reconstruction']:.3f}"
        figures["used"] = f"{metrics['used_share']:.0%}"
    return figures


def _metrics(
    model: CodebookModel, accelerator: Any, step: int, window: _Window, optimizer: Any, started: float
) -> dict[str, Any]:
    n = max(1, window.steps)
    scalars = torch.tensor([window.loss / n, window.lm / n, window.rec / n] + [v / n for v in window.per_site.values()])
    if accelerator.num_processes > 1:
        scalars = accelerator.reduce(scalars.to(accelerator.device), reduction="mean").cpu()
    metrics: dict[str, Any] = {
        "step": step,
        "loss": float(scalars[0]),
        "lm_loss": float(scalars[1]),
        "reconstruction": float(scalars[2]),
    }
    for i, site in enumerate(window.per_site):
        metrics[f"reconstruction/{site}"] = float(scalars[3 + i])
    used, total, dead = 0, 0, 0
    for name, cb in model.attached.items():
        used += int(((cb.hits - window.hits_at_start[name]) > 0).sum())
        total += cb.hits.numel()
        dead += int(cb.dead_codes().sum())
    metrics["used_share"] = used / max(1, total)
    metrics["dead"] = dead
    metrics["revived"] = window.revived
    metrics["lr"] = float(optimizer.param_groups[0]["lr"])
    metrics["seconds"] = time.perf_counter() - started
    return metrics
