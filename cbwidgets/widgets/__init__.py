"""Notebook widgets (anywidget): views of codes wired to the live model in the kernel.

The core package never imports this one; ``cbwidgets.heatmap`` reaches it lazily.
"""

from .ablation import AblationPanel, ablation_panel
from .dashboard import CodeDashboard, code_explorer
from .export import export_html
from .heatmap import CodeHeatmap, heatmap
from .search import CodeSearch
from .steering import SteeringPanel, steering_panel

__all__ = [
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
]
