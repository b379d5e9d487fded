"""SAEs saved by SAELens, attached here: every view, index and intervention then works on them.

SAELens saves an SAE as a folder: ``cfg.json`` (its settings: ``architecture``, ``d_in``,
``d_sae``, ``k``, ...; ``metadata.hook_name`` says where in a TransformerLens model it reads) and
``sae_weights.safetensors`` (``W_enc`` (d_in, d_sae), ``b_enc``, ``W_dec`` (d_sae, d_in),
``b_dec``). A TopK SAE (``architecture: "topk"``) becomes this kit's ``TopKSAE`` with the same
function: where SAELens does not subtract ``b_dec`` from the input, ``b_enc`` absorbs it; where it
rescales by the decoder's norms, the norms are folded into the encoder so the decoder rows have unit
norm. Other architectures, and SAEs that normalise their input, are refused with what to do. Reading
the folder needs only safetensors; sae-lens itself is not imported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from .errors import CodebookError
from .model import CodebookModel
from .sae import SAESpec, TopKSAE
from .sites import parse_site

__all__ = ["HOOK_SITES", "load_saelens", "site_of_hook"]

# TransformerLens hook names (layer L) -> this kit's site names
HOOK_SITES = (
    (r"blocks\.(\d+)\.attn\.hook_z", "layers.{}.attn_preproj"),
    (r"blocks\.(\d+)\.hook_attn_out", "layers.{}.attn"),
    (r"blocks\.(\d+)\.mlp\.hook_post", "layers.{}.mlp_hidden"),
    (r"blocks\.(\d+)\.hook_mlp_out", "layers.{}.mlp"),
    (r"blocks\.(\d+)\.hook_resid_post", "layers.{}.block"),
)


def site_of_hook(hook_name: str) -> str | None:
    """This kit's site for a TransformerLens hook name (``blocks.3.hook_mlp_out`` -> ``layers.3.mlp``;
    ``hook_resid_pre`` of layer L is ``block`` of layer L - 1), or None."""
    for pattern, site in HOOK_SITES:
        found = re.fullmatch(pattern, hook_name)
        if found:
            return site.format(found.group(1))
    found = re.fullmatch(r"blocks\.(\d+)\.hook_resid_pre", hook_name)
    if found and int(found.group(1)) > 0:
        return f"layers.{int(found.group(1)) - 1}.block"
    return None


def load_saelens(model: CodebookModel, folder: str | Path, site: str | None = None) -> str:
    """Attach the TopK SAE in ``folder`` (as SAELens's ``save_model`` wrote it) at ``site`` (default:
    the site of its ``metadata.hook_name``); returns the site. Its latents are then this model's
    codes at that site."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path, weights_path = folder / "cfg.json", folder / "sae_weights.safetensors"
    if not config_path.exists() or not weights_path.exists():
        raise CodebookError(
            f"{str(folder)!r} is not an SAE saved by SAELens: it needs cfg.json and sae_weights.safetensors "
            f"(what sae.save_model(folder) writes)."
        )
    cfg: dict[str, Any] = json.loads(config_path.read_text())
    architecture = cfg.get("architecture", "standard")
    if architecture != "topk":
        raise CodebookError(
            f"this SAE's architecture is {architecture!r}; cbwidgets runs TopK SAEs (SAELens architecture 'topk'). "
            f"Train a TopK SAE, or read this one's features with SAELens itself."
        )
    if cfg.get("normalize_activations", "none") != "none":
        raise CodebookError(
            f"this SAE normalises its input ({cfg['normalize_activations']!r}), which cbwidgets does not do; "
            f"fold the normalisation into its weights in SAELens (or train with normalize_activations='none')."
        )
    hook = str((cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name") or "")
    if site is None:
        site = site_of_hook(hook)
        if site is None:
            raise CodebookError(
                f"no site of this kit matches the SAE's hook {hook!r}; pass site=..., one of "
                f"{sorted(model.available_sites)[:6]}..."
            )
    weights = {name: tensor.float() for name, tensor in load_file(str(weights_path)).items()}
    missing = {"W_enc", "b_enc", "W_dec", "b_dec"} - set(weights)
    if missing:
        raise CodebookError(f"sae_weights.safetensors lacks {sorted(missing)}; is it a TopK SAE's?")
    w_enc, b_enc, w_dec, b_dec = weights["W_enc"], weights["b_enc"], weights["W_dec"], weights["b_dec"]
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    if w_enc.shape != (d_in, d_sae) or w_dec.shape != (d_sae, d_in):
        raise CodebookError(
            f"the weights' shapes {tuple(w_enc.shape)}, {tuple(w_dec.shape)} do not match d_in={d_in}, d_sae={d_sae}."
        )
    if not cfg.get("apply_b_dec_to_input", True):  # it encodes x, not x - b_dec: fold b_dec into b_enc
        b_enc = b_enc + b_dec @ w_enc
    if cfg.get("rescale_acts_by_decoder_norm", False):  # unit decoder rows, the norms in the encoder
        norms = w_dec.norm(dim=-1).clamp_min(1e-12)
        w_enc, b_enc, w_dec = w_enc * norms, b_enc * norms, w_dec / norms[:, None]
    if len(parse_site(site, model.available_sites)) != 1:
        raise CodebookError(f"site={site!r} names several sites; an SAE goes at one, like 'layers.3.mlp'.")
    (name,) = model.attach(site, SAESpec(num_codes=d_sae, dim=d_in, k=int(cfg.get("k", 100))))
    sae = model.attached[name]
    assert isinstance(sae, TopKSAE)
    with torch.no_grad():
        sae.encoder.copy_(w_enc)
        sae.b_enc.copy_(b_enc)
        sae.vectors.copy_(w_dec[None])
        sae.b_dec.copy_(b_dec)
    return name
