"""Shared fixtures: the real browser (tests/browser.py) and real Jupyter servers (tests/jupyter.py).

Cached results (code indexes built with ``cache=True``) go to a folder of this test session's own,
unless CBWIDGETS_CACHE is set: a run never reads a user's cache, and kernels started by the tests
(nbval, JupyterLab) inherit the setting.
"""

import os
import tempfile

from tests.browser import browser, page
from tests.jupyter import classic_notebook, front_end, jupyterlab, notebook7

__all__ = ["browser", "classic_notebook", "front_end", "jupyterlab", "notebook7", "page"]

os.environ.setdefault("CBWIDGETS_CACHE", tempfile.mkdtemp(prefix="cbwidgets-test-cache-"))
