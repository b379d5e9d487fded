"""``python -m cbwidgets demo``."""

import sys

from .cli import main

sys.exit(main())
