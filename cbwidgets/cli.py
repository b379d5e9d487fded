"""The ``cbwidgets`` command: ``demo``, ``train-fsm`` and ``storyteller`` (also ``python -m cbwidgets ...``)."""

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
    fsm = commands.add_parser(
        "train-fsm", help="train the default TokFSM model from scratch (CPU, ~2.5 min), save it, print its metrics"
    )
    fsm.add_argument("--out", default="tokfsm-model", help="folder to save the model in (default ./tokfsm-model)")
    fsm.add_argument("--seed", type=int, default=0)
    fsm.add_argument("--base-steps", type=int, default=1000, help="base-model steps (default 1000)")
    fsm.add_argument("--code-steps", type=int, default=100, help="codebook-only steps after k-means (default 100)")
    fsm.add_argument("--float32", action="store_true", help="save float32 weights (default: float16, half the size)")
    fsm.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    story = commands.add_parser(
        "storyteller",
        help="train the story model with attention codebooks from scratch (CPU, ~20 min), save it, print its metrics",
    )
    story.add_argument("--out", default="storyteller", help="folder to save the model in (default ./storyteller)")
    story.add_argument("--seed", type=int, default=0)
    story.add_argument("--base-steps", type=int, default=None, help="base-model steps (default: the recipe's)")
    story.add_argument(
        "--joint-steps", type=int, default=None, help="joint model+codebook steps (default: the recipe's)"
    )
    story.add_argument("--float32", action="store_true", help="save float32 weights (default: float16, half the size)")
    story.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    if args.command == "storyteller":
        _storyteller(parser, args)
    if args.command == "train-fsm":
        if args.base_steps < 1:
            parser.error(f"--base-steps {args.base_steps} is not valid; give a positive number of steps.")
        if args.code_steps < 0:
            parser.error(f"--code-steps {args.code_steps} is not valid; give 0 or a positive number of steps.")
        from .tokfsm.train_cli import train_fsm

        train_fsm(args.out, args.seed, args.base_steps, args.code_steps, not args.float32, not args.no_progress)
    if args.command == "demo":
        from .demo import run_demo

        for flag, value in (("--steps", args.steps), ("--base-steps", args.base_steps)):
            if value < 1:
                parser.error(f"{flag} {value} is not valid; give a positive number of steps.")
        run_demo(steps=args.steps, base_steps=args.base_steps, seed=args.seed, progress=not args.no_progress)
    return 0


def _storyteller(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from dataclasses import replace

    from .stories.storyteller import StoryRecipe
    from .stories.train_cli import train_storyteller_cli

    recipe = replace(StoryRecipe(), seed=args.seed)
    for flag, name in (("--base-steps", "base_steps"), ("--joint-steps", "joint_steps")):
        value = getattr(args, name)
        if value is not None:
            if value < 0:
                parser.error(f"{flag} {value} is not valid; give 0 or a positive number of steps.")
            recipe = replace(recipe, **{name: value})
    train_storyteller_cli(args.out, recipe, half=not args.float32, progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
