"""Notebook widgets (anywidget): views of codes wired to the live model in the kernel.

The core package never imports this one; ``cbwidgets.heatmap`` reaches it lazily.
"""

from .export import export_html
from .heatmap import CodeHeatmap, heatmap

__all__ = ["CodeHeatmap", "export_html", "heatmap"]
