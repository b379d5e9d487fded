"""The widgets' public names, written once: ``cbwidgets`` offers them lazily (the core never imports
the widgets), and ``cbwidgets.widgets`` exports them."""

__all__ = ["WIDGET_NAMES"]

WIDGET_NAMES = (
    "AblationPanel",
    "CodeDashboard",
    "CodeGraph",
    "CodeHeatmap",
    "CodeSearch",
    "FSMView",
    "SteeringPanel",
    "TrainingMonitor",
    "ablation_panel",
    "code_explorer",
    "code_graph_view",
    "export_html",
    "fsm_explorer",
    "fsm_view",
    "heatmap",
    "steering_panel",
)
