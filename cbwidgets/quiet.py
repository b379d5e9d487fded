"""Loading a small model in a notebook without transformers' weight-loading progress bar.

The bar is noise for a model that loads in a second; it is switched off around the load and put
back as it was, errors included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["loading_bars_hidden"]


@contextmanager
def loading_bars_hidden() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    had_bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if had_bars:
            hf_logging.enable_progress_bar()
