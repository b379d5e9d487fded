"""Notebook widgets (anywidget): views of codes wired to the live model in the kernel.

The core package never imports this one; ``cbwidgets.heatmap`` reaches it lazily.
"""

from ..widget_names import WIDGET_NAMES
from .ablation import AblationPanel as AblationPanel
from .ablation import ablation_panel as ablation_panel
from .dashboard import CodeDashboard as CodeDashboard
from .dashboard import code_explorer as code_explorer
from .export import export_html as export_html
from .fsm import FSMView as FSMView
from .fsm import fsm_explorer as fsm_explorer
from .fsm import fsm_view as fsm_view
from .graph import CodeGraph as CodeGraph
from .graph import code_graph_view as code_graph_view
from .heatmap import CodeHeatmap as CodeHeatmap
from .heatmap import heatmap as heatmap
from .monitor import TrainingMonitor as TrainingMonitor
from .search import CodeSearch as CodeSearch
from .steering import SteeringPanel as SteeringPanel
from .steering import steering_panel as steering_panel

__all__ = list(WIDGET_NAMES)  # the names, written once in cbwidgets.widget_names
