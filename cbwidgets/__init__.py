"""cbwidgets: codebook features in the notebook.

Attach codebooks to a stock transformers causal LM, train them, read which codes fire on which
tokens, and switch codes off or on to see what they do.

    from cbwidgets import CodebookModel
    model = CodebookModel.from_config(config)
    model.attach(["attn_preproj", "mlp"], num_codes=1000, k=1)
    out = model(token_ids)             # out.logits, out.codes
    with model.ablate("0.3.17"):       # layer 0, head 3, code 17
        ...

A TopK SAE attaches the same way (``model.attach("layers.6.mlp", SAESpec(num_codes=4096, k=32))``);
``dictionary_metrics`` measures either kind as the field does (L0, FVU, CE loss recovered, ...);
``matched_sae`` puts an SAE of a codebook's size and L0 in its place, to compare the two.
"""

from .codebook import Codebook, CodebookSpec
from .codes import Codes
from .dictionary_metrics import dictionary_metrics
from .errors import CodebookError
from .generate import Generation, generate
from .interventions import Ablate, AblateEach, Add, Force, InterventionPlan, Patch, Scale
from .labels import CodeLabel, CodeLabels
from .matched_sae import matched_sae
from .model import CodebookModel, CodebookOutput
from .names import CodebookNames
from .sae import SAESpec, TopKSAE
from .sites import SITE_KINDS, SITE_TABLE, supported_model_types
from .stories import storyteller
from .train import TrainConfig, TrainResult, train
from .widget_names import WIDGET_NAMES

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``cbwidgets.heatmap`` and the widget classes load the widgets on first use, not on import."""
    if name in WIDGET_NAMES:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'cbwidgets' has no attribute {name!r}")


__all__ = [  # and the widget names (WIDGET_NAMES), loaded on first use
    "SITE_KINDS",
    "SITE_TABLE",
    "Ablate",
    "AblateEach",
    "Add",
    "Codebook",
    "CodebookError",
    "CodebookModel",
    "CodebookNames",
    "CodebookOutput",
    "CodebookSpec",
    "CodeLabel",
    "CodeLabels",
    "Codes",
    "Force",
    "Generation",
    "InterventionPlan",
    "Patch",
    "SAESpec",
    "Scale",
    "TopKSAE",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "dictionary_metrics",
    "generate",
    "matched_sae",
    "storyteller",
    "supported_model_types",
    "train",
    *WIDGET_NAMES,
]
