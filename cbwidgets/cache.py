"""An on-disk cache for results that are slow to compute and fully decided by their inputs.

A code index over the storyteller's corpus takes about a minute on 2 CPU cores; a notebook run a
second time should not wait for it again. Entries live under ``$CBWIDGETS_CACHE`` (default
``$XDG_CACHE_HOME/cbwidgets``, else ``~/.cache/cbwidgets``), one folder per key; a key is a hash of
everything the result depends on (the model's weights and codebook settings, the corpus, the
settings), so a retrained model or another corpus never reads a stale entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from .model import CodebookModel

__all__ = ["cache_folder", "cache_root", "fingerprint"]


def cache_root() -> Path:
    """Where cached results live: $CBWIDGETS_CACHE, else $XDG_CACHE_HOME/cbwidgets, else ~/.cache/cbwidgets."""
    if os.environ.get("CBWIDGETS_CACHE"):
        return Path(os.environ["CBWIDGETS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cbwidgets"


def cache_folder(cache: bool | str | Path, kind: str, key: str) -> Path:
    """The folder for one entry: under ``cache`` when it is a path, else under ``cache_root()``."""
    root = Path(cache) if isinstance(cache, str | Path) else cache_root()
    return root / kind / key


def fingerprint(model: CodebookModel, *parts: Any, arrays: Iterable[np.ndarray] = ()) -> str:
    """A hash of the model's weights, config and codebook settings, plus ``parts`` (JSON-able) and
    ``arrays``: equal inputs give equal keys, and any change of weights or data a new one."""
    digest = hashlib.sha256()
    digest.update(model.config.to_json_string(use_diff=False).encode())
    specs = {site: codebook.spec.to_dict() for site, codebook in model.attached.items()}
    digest.update(json.dumps([specs, parts], sort_keys=True, default=str).encode())
    for name, parameter in model.named_parameters():  # weights only: usage counters change as it runs
        tensor = parameter.detach().cpu().contiguous()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())  # any dtype, bfloat16 too
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:32]
