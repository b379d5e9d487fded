"""What a code writes: its vector in the residual stream, the tokens it pushes up and down, its neighbours.

A code's output replaces the activation at its site. Where that output is added to the residual
stream (``mlp``, ``attn``) or is the stream (``block``) it is already a residual vector; a head's
code (``attn_preproj``) becomes one through that head's slice of the output projection. The
logit effect is the direct path only: the residual vector times the unembedding, before the final
norm (whose per-token scale the code does not know), centred so that promoted tokens are positive.
``mlp_hidden`` codes live among the MLP's neurons, not in the residual stream: no logit effect.
"""

from __future__ import annotations

from typing import cast

import pandas as pd
import torch
from torch import Tensor, nn

from .errors import CodebookError
from .model import CodebookModel
from .names import CodeRef

__all__ = ["code_logit_effect", "code_vector", "residual_vector", "similar_codes"]


def _locate(model: CodebookModel, code: CodeRef) -> tuple[int, str, int, int]:
    """(codebook index, site name, group, code id) of a code name such as '1.mlp.5' or '0.3.17'."""
    index, value = model.names.parse_code(code)
    book = model.names.codebooks[index]
    return index, str(book.site), book.group, value


def code_vector(model: CodebookModel, code: CodeRef) -> Tensor:
    """The vector the codebook outputs for this code (its group's slice of the site)."""
    _, site, group, value = _locate(model, code)
    return model.attached[site].vectors.detach()[group, value].float()


def residual_vector(model: CodebookModel, code: CodeRef) -> Tensor | None:
    """The code's contribution to the residual stream, or None where it has no direct one."""
    _, site, group, _ = _locate(model, code)
    kind = model.available_sites[site].kind
    vector = code_vector(model, code)
    if kind in ("mlp", "attn", "block"):
        return vector
    if kind == "attn_preproj":
        proj = model.model.get_submodule(model.available_sites[site].module)
        weight = cast(Tensor, proj.weight).detach().float()
        width = vector.shape[0]
        cols = slice(group * width, (group + 1) * width)
        # nn.Linear computes x @ W.T; GPT-2's Conv1D computes x @ W
        return weight[:, cols] @ vector if isinstance(proj, nn.Linear) else vector @ weight[cols, :]
    return None


def code_logit_effect(model: CodebookModel, code: CodeRef, top: int = 10) -> pd.DataFrame:
    """Tokens the code pushes up (``effect`` > 0) and down (< 0), at most ``top`` of each, strongest first."""
    vector = residual_vector(model, code)
    if vector is None:
        raise CodebookError(
            f"code {code!r} sits at an mlp_hidden site (among the MLP's neurons), which writes nothing to the "
            f"residual stream directly; logit effects exist for mlp, attn, attn_preproj and block codes."
        )
    unembed = model.model.get_output_embeddings()
    if unembed is None:
        raise CodebookError("this model has no output embedding to read a logit effect through.")
    logits = unembed.weight.detach().float() @ vector
    logits = logits - logits.mean()
    up = [i for i in logits.topk(min(top, logits.numel())).indices.tolist() if logits[i] > 0]
    down = [i for i in (-logits).topk(min(top, logits.numel())).indices.tolist() if logits[i] < 0]
    ids = up + down
    tok = model.tokenizer
    names = [tok.decode([i]) if tok is not None else str(i) for i in ids]
    return pd.DataFrame(
        {
            "token": names,
            "token_id": ids,
            "effect": logits[ids].tolist(),
            "direction": ["promotes"] * len(up) + ["suppresses"] * len(down),
        }
    )


def similar_codes(model: CodebookModel, code: CodeRef, n: int = 5) -> pd.DataFrame:
    """The ``n`` codes of the same codebook whose vectors point most nearly the same way (cosine)."""
    index, site, group, value = _locate(model, code)
    vectors = model.attached[site].vectors.detach()[group].float()  # (C, dg)
    cosine = torch.nn.functional.cosine_similarity(vectors, vectors[value][None], dim=-1)
    cosine[value] = -2.0  # not itself
    best = cosine.topk(min(n, vectors.shape[0] - 1))
    names = [model.names.code_name(index, i) for i in best.indices.tolist()]
    return pd.DataFrame({"code": names, "cosine": best.values.tolist()})
