"""Saving and loading codebooks and whole models: safetensors for tensors, JSON for settings.

A saved model is a folder: the base model in transformers' format under ``base/``, its tokenizer
under ``tokenizer/``, and the codebooks as ``codebooks.safetensors`` (tensors keyed
``{site}/{tensor}``) beside ``codebooks.json`` (per site, the whole spec: a ``CodebookSpec``, or
an ``SAESpec`` with its kind) and, where codes are labelled, ``labels.json`` (``labels.py``). Codebooks
alone travel the same way (``save_codebooks``), for a base model shipped elsewhere. Nothing is
unpickled.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from .atomic import atomic_file, atomic_folder
from .dictionary import spec_from_dict
from .errors import CodebookError
from .quiet import transformers_quiet

if TYPE_CHECKING:
    from .model import CodebookModel

__all__ = [
    "BASE_DIR",
    "CODEBOOKS_JSON",
    "CODEBOOKS_WEIGHTS",
    "FORMAT",
    "FORMAT_VERSION",
    "TOKENIZER_DIR",
    "load_base",
    "load_codebooks",
    "load_pretrained",
    "load_tokenizer",
    "read_meta",
    "save_codebooks",
    "save_pretrained",
]

FORMAT = "cbwidgets-codebooks"
FORMAT_VERSION = 2  # 2: code vectors saved as "vectors" (1: "codes"); the spec includes eps
READABLE_VERSIONS = (1, 2)
CODEBOOKS_JSON = "codebooks.json"
CODEBOOKS_WEIGHTS = "codebooks.safetensors"
BASE_DIR = "base"
_KNOWN_FIELDS = {"format", "version", "model_type", "sites"}
TOKENIZER_DIR = "tokenizer"


def save_pretrained(model: CodebookModel, folder: str | Path) -> Path:
    """The base model, its tokenizer and the codebooks, in one folder.

    Each part is written under a temporary name beside its place and then renamed into it, the
    codebooks' JSON last: a failed save (a full disk, say) leaves the folder as it was.
    """
    folder = Path(folder)
    with atomic_folder(folder / BASE_DIR) as base, transformers_quiet():
        model.model.save_pretrained(base)
    if model.tokenizer is not None:
        with atomic_folder(folder / TOKENIZER_DIR) as tokenizer, transformers_quiet():
            model.tokenizer.save_pretrained(tokenizer)
    return save_codebooks(model, folder)


def save_codebooks(model: CodebookModel, folder: str | Path) -> Path:
    """Only the codebooks: their weights and counters, and each one's whole spec (each file atomic)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tensors = {}
    for site, codebook in model.attached.items():
        for key, value in codebook.state_dict().items():
            tensors[f"{site}/{key}"] = value.detach().cpu().contiguous()
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model_type": model.config.model_type,
        "sites": {site: codebook.spec.to_dict() for site, codebook in model.attached.items()},
    }
    with atomic_file(folder / CODEBOOKS_WEIGHTS) as weights:
        save_file(tensors, str(weights), metadata={"format": FORMAT})
    with atomic_file(folder / CODEBOOKS_JSON) as path:
        path.write_text(json.dumps(meta, indent=2))
    model.labels.save(folder)
    return folder


def load_codebooks(model: CodebookModel, folder: str | Path) -> list[str]:
    """Attach the codebooks that ``save_codebooks`` wrote, each built from its saved spec."""
    folder = Path(folder)
    meta = read_meta(folder / CODEBOOKS_JSON)
    if meta.get("model_type") not in (None, model.config.model_type):
        raise CodebookError(
            f"the codebooks in {str(folder)!r} were made for a {meta['model_type']} model; this is "
            f"{model.config.model_type}."
        )
    tensors = _read_weights(folder / CODEBOOKS_WEIGHTS)
    specs = {site: spec_from_dict(spec) for site, spec in meta["sites"].items()}
    attached: list[str] = []
    for site, spec in specs.items():
        model.attach(site, spec)
        state = {key.split("/", 1)[1]: t for key, t in tensors.items() if key.split("/", 1)[0] == site}
        try:
            model.attached[site].load_state_dict(state)
        except RuntimeError as err:
            model.detach([*attached, site])
            raise CodebookError(
                f"{CODEBOOKS_WEIGHTS} in {str(folder)!r} does not match {CODEBOOKS_JSON} for {site}: {err}"
            ) from None
        attached.append(site)
    model.labels.load(folder)
    return attached


def load_pretrained(cls: type[CodebookModel], folder: str | Path, device: str | torch.device | None) -> CodebookModel:
    """What ``save_pretrained`` wrote, or a plain transformers model folder (then with no codebooks)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CodebookError(f"{str(folder)!r} is not a folder; pass the folder that save_pretrained wrote.")
    if not (folder / CODEBOOKS_JSON).exists():
        if (folder / "config.json").exists():
            return cls(load_base(folder, device), load_tokenizer(folder))
        raise CodebookError(
            f"{str(folder)!r} is not a saved model: it has neither {CODEBOOKS_JSON} (a cbwidgets model) nor "
            f"config.json (a transformers model)."
        )
    read_meta(folder / CODEBOOKS_JSON)  # a clear error before the base model is loaded
    model = cls(load_base(folder / BASE_DIR, device), load_tokenizer(folder / TOKENIZER_DIR))
    load_codebooks(model, folder)
    return model


def read_meta(path: Path) -> dict[str, Any]:
    """The codebooks' JSON, checked: a clear error before anything heavy is loaded."""
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CodebookError(
            f"{str(path)!r} is not valid JSON ({err}); re-save the model with save_pretrained."
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("sites"), dict):
        raise CodebookError(f"{str(path)!r} is not a cbwidgets codebook file (expected format {FORMAT!r}).")
    unknown = sorted(set(meta) - _KNOWN_FIELDS)
    if unknown:
        warnings.warn(
            f"{str(path)!r} has fields this cbwidgets does not know, and ignores: {unknown}. A newer "
            f"cbwidgets may have written it; upgrade cbwidgets if the model does not behave as saved.",
            stacklevel=3,
        )
    if meta.get("version") not in READABLE_VERSIONS:
        raise CodebookError(
            f"{str(path)!r} has format version {meta.get('version')!r}; this cbwidgets reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}. Upgrade cbwidgets to read it."
        )
    return meta


def _read_weights(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.exists():
        raise CodebookError(f"{str(path)!r} is missing; the codebook weights were not saved.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CodebookError(
            f"{str(path)!r} is not a readable safetensors file ({err}); it may be truncated or corrupt; re-save it."
        ) from None


def load_base(folder: Path, device: str | torch.device | None) -> PreTrainedModel:
    """A transformers causal LM from a local folder (never a hub)."""
    if not (folder / "config.json").exists():
        raise CodebookError(f"{str(folder)!r} has no config.json; the base model was not saved there.")
    try:
        with transformers_quiet():
            model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    except MemoryError:
        raise
    except Exception as err:  # safetensors, json and torch each raise their own kind for a damaged file
        raise CodebookError(
            f"could not load the base model from {str(folder)!r} ({type(err).__name__}: {err}). A file there "
            f"may be truncated or corrupt (an interrupted copy or download): save the model again with "
            f"save_pretrained, or copy the folder again."
        ) from None
    if device is not None:
        nn.Module.to(model, device)
    return model


def load_tokenizer(folder: Path) -> Any:
    """The tokenizer saved in ``folder``, or None when there is none."""
    if not (folder / "tokenizer_config.json").exists() and not (folder / "tokenizer.json").exists():
        return None
    from transformers import AutoTokenizer

    try:
        with transformers_quiet():
            return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as err:
        raise CodebookError(
            f"could not load the tokenizer from {str(folder)!r} ({type(err).__name__}: {err}); a file there may "
            f"be truncated or corrupt: save the model again with save_pretrained."
        ) from None
