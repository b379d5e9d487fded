"""Language-model loss and next-token accuracy over documents, with the codebooks in each mode.

The pair the codebook-features paper reports for every model is loss and accuracy with and
without codebooks on held-out text; this measures it the same way for any wrapped model.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import pandas as pd
import torch
import torch.nn.functional as F

from .errors import CodebookError, check_choice, check_positive_int
from .model import CodebookModel

__all__ = ["MODES", "batch_scores", "lm_metrics"]

# "codebooks": as the model runs; "normalize_only": each codebook's LayerNorm but no snap (the
# continuous activations the codes stand for); "disabled": the base model with no codebook at all.
MODES = ("codebooks", "normalize_only", "disabled")


def _mode(model: CodebookModel, mode: str) -> AbstractContextManager[object]:
    if mode == "normalize_only":
        return model.normalize_only()
    if mode == "disabled":
        return model.codebooks_disabled()
    return nullcontext()


def _token_rows(model: CodebookModel, documents: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
    limit = model.max_length()
    rows = []
    for doc in documents:
        if isinstance(doc, str):
            if model.tokenizer is None:
                raise CodebookError("texts need a model with a tokenizer; pass token ids instead.")
            ids = list(model.tokenizer(doc, add_special_tokens=True)["input_ids"])
        else:
            ids = [int(t) for t in doc]
        ids = ids[:limit] if limit else ids
        if len(ids) >= 2:
            rows.append(ids)
    if not rows:
        raise CodebookError("no document has two or more tokens; give texts to score.")
    return rows


@torch.no_grad()
def batch_scores(model: CodebookModel, rows: Sequence[Sequence[int]], start: int = 1) -> tuple[float, int, int]:
    """Summed negative log-likelihood, top-1 hits and count of the tokens at positions >= ``start``
    of each row (each predicted from the tokens before it), rows of any length in one forward."""
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for j, r in enumerate(rows):  # right padding: causal attention never sees it
        ids[j, : len(r)] = torch.tensor(r)
        labels[j, start : len(r)] = torch.tensor(r[start:])
    logits = model(ids.to(model.device)).logits[:, start - 1 : -1].float()
    target = labels[:, start:].to(logits.device)
    loss = float(F.cross_entropy(logits.transpose(1, 2), target, reduction="sum"))
    valid = target != -100
    return loss, int(((logits.argmax(-1) == target) & valid).sum()), int(valid.sum())


@torch.no_grad()
def lm_metrics(
    model: CodebookModel,
    documents: Sequence[str] | Sequence[Sequence[int]],
    modes: Sequence[str] = ("codebooks", "disabled"),
    batch_size: int = 8,
) -> pd.DataFrame:
    """One row per mode: loss (nats per predicted token), accuracy (top-1), tokens scored.

    Documents longer than the model's context are cut to it; each is scored from its first token.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    for mode in modes:
        check_choice("mode", mode, MODES)
    rows = sorted(_token_rows(model, documents), key=len)
    table = []
    with model.evaluating():
        for mode in modes:
            loss_sum, correct, count = 0.0, 0, 0
            with _mode(model, mode):
                for i in range(0, len(rows), batch_size):
                    s, c, n = batch_scores(model, rows[i : i + batch_size])
                    loss_sum, correct, count = loss_sum + s, correct + c, count + n
            table.append({"mode": mode, "loss": loss_sum / count, "accuracy": correct / count, "tokens": count})
    return pd.DataFrame(table)
