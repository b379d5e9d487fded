"""The default TokFSM model: built, trained on a 2-core CPU in about 4 minutes, shipped, loaded offline.

The architecture is the reference's (GPT-NeoX, 4 layers, d_model 128, 4 heads, d_mlp 512, context
128; codebooks at every layer's attention heads before the output projection and at every MLP,
k = 1; 1,000 codes per head and 10,000 per MLP, as in the paper's released model). Two choices make
it trainable in minutes on two cores:

- Rotary frequencies scaled so the fastest pair turns by pi per token. Cosines of pi * distance are
  +-1, so attention can read a position's parity, which is what tells a state's first digit from
  its second anywhere in a 128-token walk. With the stock frequencies a small model learns that
  only near the start and mis-reads long walks.
- The base model is trained with every codebook's LayerNorm in place but no snap
  (``CodebookModel.normalize_only``). A codebook discards the norm of what it replaces, and a model
  that never saw that happen relies on it (a last-layer MLP output's norm varies 20-fold); trained
  this way it does not, and k-means codes then go in at almost no cost.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from transformers import GPTNeoXConfig

from ..errors import check_positive_int
from ..model import CodebookModel
from ..quiet import transformers_quiet
from ..recipe import Recipe as SharedRecipe
from ..recipe import TrainedModel, load_trained, save_trained, train_in_phases
from ..rotary_layers import check_rotary_layers, set_rotary_layers
from ..train import Data
from .world import TokFSM

__all__ = [
    "DEFAULT_MODEL_DIR",
    "FSMRecipe",
    "TrainedModel",
    "build_default_model",
    "default_config",
    "fsm_data",
    "load_default",
    "save_default",
    "train_default",
]

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
LAYERS = 4  # the reference's depth


class _DropRopeFactorWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "factor field must be" not in record.getMessage()


@contextmanager
def _quiet_rope_factor(bars: bool = True) -> Iterator[None]:
    """transformers warns about a rotary scaling factor below 1; here it is intended (see module doc).

    ``bars=False`` also hides transformers' weight-loading bar, noise for a 12 MB model in a notebook.
    """
    log = logging.getLogger("transformers.modeling_rope_utils")
    quiet = _DropRopeFactorWarning()
    log.addFilter(quiet)
    try:
        with transformers_quiet() if not bars else nullcontext():
            yield
    finally:
        log.removeFilter(quiet)


def default_config(fsm: TokFSM, context: int = 128, rotary_layers: int | None = None) -> GPTNeoXConfig:
    """The reference's GPT-NeoX shape with parity-reading rotary frequencies (see the module doc);
    ``rotary_layers`` keeps positions in that many first layers only (``cbwidgets.rotary_layers``)."""
    with _quiet_rope_factor():
        config = GPTNeoXConfig(
            num_hidden_layers=LAYERS,
            hidden_size=128,
            num_attention_heads=4,
            intermediate_size=512,
            vocab_size=fsm.vocab_size,
            max_position_embeddings=context,
            rope_parameters={
                "rope_type": "linear",
                "factor": 1 / math.pi,
                "rope_theta": 10000.0,
                "partial_rotary_factor": 1.0,
            },
            bos_token_id=fsm.bos_id,
            eos_token_id=fsm.bos_id,
            pad_token_id=fsm.bos_id,
        )
    set_rotary_layers(config, rotary_layers)
    return config


def build_default_model(
    fsm: TokFSM | None = None,
    seed: int = 0,
    num_codes: int = 1000,
    mlp_codes: int | None = 10000,
    rotary_layers: int | None = None,
) -> CodebookModel:
    """An untrained default model with its 8 codebook sites (4 per-head groups + 4 MLPs), k = 1:
    ``num_codes`` codes per head, ``mlp_codes`` per MLP (``num_codes`` when None); positions in the
    first ``rotary_layers`` layers only (None: all four)."""
    fsm = fsm or TokFSM()
    config = default_config(fsm, rotary_layers=rotary_layers)
    with _quiet_rope_factor():
        model = CodebookModel.from_config(config, tokenizer=fsm.tokenizer(), seed=seed)
    sizes = {"attn_preproj": num_codes, "mlp": mlp_codes or num_codes}
    for size in dict.fromkeys(sizes.values()):  # one attach when the sizes agree: the shipped model's order
        sites = [site for site, n in sizes.items() if n == size]
        model.attach(sites, num_codes=size, k=1, similarity="euclidean", revive_after=25)
    return model


@dataclass(frozen=True)
class FSMRecipe(SharedRecipe):
    """The default model's recipe (the shared three phases, see ``cbwidgets.recipe``); the defaults
    are what the shipped model was made with: 1,000 base steps of 16 x 128 tokens, k-means on 128
    walks, 100 codebook-only steps with dead-code revival.

    ``mlp_codes`` gives the MLPs their own size: 10,000, as in the paper's released model (None:
    ``num_codes``). At 1,000 a layer-1 MLP code fired on several states and trigrams (purity
    0.958 / 0.597 against the paper's 0.99 / 0.91; at 10,000, 0.990 / 0.786) for about 75 s more
    training. With far more codes than the distinct activations a site sees, k-means and revival
    leave many codes within float rounding of each other; the finetune phase retires those twins.

    ``rotary_layers=1`` keeps positions in layer 0 only (``cbwidgets.rotary_layers``). With positions
    everywhere, each later layer puts most of a head's weight one token back and reads a state's
    digits again, so layer 1's codes need not tell states apart. Without positions there, they do:
    layer-1 MLP purity 1.000 / 0.99 and best-code precision >= 0.997 at seeds 0 and 1 (positions
    everywhere: 0.990 / 0.786 and 0.945 at seed 0, 0.946 / 0.492 and 0.875 at seed 1). At 1,000
    base steps it costs accuracy (first-transition 0.975 and 0.974, sampled walks 0.956, against
    0.995 and 0.972), so the shipped model keeps positions in every layer.
    """

    num_codes: int = 1000  # per attention head (and per MLP with mlp_codes=None)
    mlp_codes: int | None = 10000  # per MLP; None: num_codes
    rotary_layers: int | None = None  # positions in the first layers only; None: in all four

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "num_codes", check_positive_int("num_codes", self.num_codes))
        object.__setattr__(self, "mlp_codes", check_positive_int("mlp_codes", self.mlp_codes, allow_none=True))
        object.__setattr__(self, "rotary_layers", check_rotary_layers(self.rotary_layers, LAYERS))

    def untrained_model(self, fsm: TokFSM) -> CodebookModel:
        """The model this recipe starts from: ``build_default_model`` with the recipe's seed, code
        counts and rotary layers (one place, so a new model setting reaches every caller)."""
        return build_default_model(fsm, self.seed, self.num_codes, self.mlp_codes, self.rotary_layers)


@dataclass(frozen=True)
class _FSMData:
    fsm: TokFSM
    length: int

    def batches(self, seed: int) -> Data:
        return self.fsm.batches(self.length, seed)

    def sample(self, sequences: int, seed: int) -> Tensor:
        return self.fsm.sample(sequences, self.length, seed=seed)


def fsm_data(fsm: TokFSM, recipe: SharedRecipe) -> _FSMData:
    """The phases' data: random walks of ``recipe.length`` tokens."""
    return _FSMData(fsm, recipe.length)


def train_default(
    recipe: FSMRecipe | None = None, fsm: TokFSM | None = None, progress: bool = True, measure: bool = False
) -> TrainedModel:
    """Train the default model from scratch (about 4 minutes on a 2-core CPU).

    ``measure`` puts ``compare_to_reference`` of the finished model in ``metrics``.
    """
    from .metrics import compare_to_reference

    recipe = recipe or FSMRecipe()
    fsm = fsm or TokFSM()
    model = recipe.untrained_model(fsm)

    def reference(model: CodebookModel, phase: str) -> pd.DataFrame | None:
        return compare_to_reference(model, fsm) if measure and phase == "finetune" else None

    return train_in_phases(model, recipe, fsm_data(fsm, recipe), progress, reference)


def save_default(trained: TrainedModel, folder: str | Path, half: bool = True) -> Path:
    """Save a trained model; ``half`` stores float16 weights (the shipped model is about 12 MB)."""
    return save_trained(trained, folder, half, quiet=_quiet_rope_factor)


def load_default(folder: str | Path | None = None, device: str | torch.device | None = None) -> CodebookModel:
    """The shipped TokFSM model, or one that ``cbwidgets train-fsm --out folder`` saved; float32, eval mode."""
    return load_trained(
        folder, DEFAULT_MODEL_DIR, "TokFSM model", "cbwidgets train-fsm", device, lambda: _quiet_rope_factor(bars=False)
    )


def __getattr__(name: str) -> Any:
    if name == "Recipe":  # the TokFSM recipe's name before both shipped models shared one recipe shape
        warnings.warn("cbwidgets.tokfsm.Recipe is now cbwidgets.tokfsm.FSMRecipe", DeprecationWarning, stacklevel=2)
        return FSMRecipe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
