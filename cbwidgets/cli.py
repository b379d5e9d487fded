"""The ``cbwidgets`` command: ``cbwidgets demo`` (also ``python -m cbwidgets demo``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cbwidgets", description="Codebook features in the notebook.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train a small codebook model on TokFSM (CPU, ~1 min) and show its codes")
    demo.add_argument("--steps", type=int, default=300, help="joint training steps with codebooks (default 300)")
    demo.add_argument(
        "--base-steps", type=int, default=1000, help="base-model steps before the codebooks (default 1000)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        for flag, value in (("--steps", args.steps), ("--base-steps", args.base_steps)):
            if value < 1:
                parser.error(f"{flag} {value} is not valid; give a positive number of steps.")
        run_demo(steps=args.steps, base_steps=args.base_steps, seed=args.seed, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
