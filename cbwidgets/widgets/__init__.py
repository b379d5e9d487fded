"""Notebook widgets (anywidget): views of codes wired to the live model in the kernel.

The core package never imports this one; ``cbwidgets.heatmap`` reaches it lazily.
"""

from .ablation import AblationPanel, ablation_panel
from .export import export_html
from .heatmap import CodeHeatmap, heatmap

__all__ = ["AblationPanel", "CodeHeatmap", "ablation_panel", "export_html", "heatmap"]
