"""cbwidgets: codebook features in the notebook.

Attach codebooks to a stock transformers causal LM, train them, read which codes fire on which
tokens, and switch codes off or on to see what they do.

    from cbwidgets import CodebookModel
    model = CodebookModel.from_config(config)
    model.attach(["attn_preproj", "mlp"], num_codes=1000, k=1)
    out = model(token_ids)             # out.logits, out.codes
    with model.ablate("0.3.17"):       # layer 0, head 3, code 17
        ...
"""

from .codebook import Codebook, CodebookSpec
from .codes import Codes
from .errors import CodebookError
from .generate import Generation, generate
from .interventions import Ablate, Add, Force, Patch, Scale
from .model import CodebookModel, CodebookOutput
from .sites import SITE_KINDS, SITE_TABLE, supported_model_types
from .stories import storyteller
from .train import TrainConfig, TrainResult, train

__version__ = "0.1.0"

_WIDGETS = (
    "AblationPanel",
    "CodeDashboard",
    "CodeHeatmap",
    "CodeSearch",
    "SteeringPanel",
    "ablation_panel",
    "code_explorer",
    "export_html",
    "heatmap",
    "steering_panel",
)


def __getattr__(name: str) -> object:
    """``cbwidgets.heatmap`` and the widget classes load the widgets on first use, not on import."""
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'cbwidgets' has no attribute {name!r}")


__all__ = [
    "SITE_KINDS",
    "SITE_TABLE",
    "Ablate",
    "AblationPanel",
    "Add",
    "CodeDashboard",
    "CodeHeatmap",
    "CodeSearch",
    "Codebook",
    "CodebookError",
    "CodebookModel",
    "CodebookOutput",
    "CodebookSpec",
    "Codes",
    "Force",
    "Generation",
    "Patch",
    "Scale",
    "SteeringPanel",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "ablation_panel",
    "code_explorer",
    "export_html",
    "generate",
    "heatmap",
    "steering_panel",
    "storyteller",
    "supported_model_types",
    "train",
]
