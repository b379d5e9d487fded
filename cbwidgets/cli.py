"""The ``cbwidgets`` command: ``lab``, ``demo``, ``train-fsm``, ``storyteller`` (or ``python -m cbwidgets ...``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .recipe import Recipe

__all__ = ["main"]

R = TypeVar("R", bound="Recipe")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cbwidgets", description="Codebook features in the notebook.")
    commands = parser.add_subparsers(dest="command", required=True)
    lab = commands.add_parser(
        "lab", help="copy the tutorial notebooks into a folder (keeping edited copies) and open JupyterLab on them"
    )
    lab.add_argument(
        "--folder", default="cbwidgets-notebooks", help="where the notebooks go (default ./cbwidgets-notebooks)"
    )
    lab.add_argument("--port", type=int, default=None, help="JupyterLab's port (default: 8888 or the next free one)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser; open the printed URL yourself")
    demo = commands.add_parser("demo", help="train a small codebook model on TokFSM (CPU, ~1 min) and show its codes")
    demo.add_argument("--steps", type=int, default=300, help="joint training steps with codebooks (default 300)")
    demo.add_argument(
        "--base-steps", type=int, default=1000, help="base-model steps before the codebooks (default 1000)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train_fsm = _recipe_command(
        commands,
        "train-fsm",
        "train the default TokFSM model from scratch (2-core CPU, about 4 min), save it, print its metrics",
        "tokfsm-model",
        "--code-steps",
    )
    train_fsm.add_argument(
        "--rotary-layers",
        type=int,
        default=None,
        help="keep rotary positions in the first N layers only (default: all four; see cbwidgets.rotary_layers)",
    )
    _recipe_command(
        commands,
        "storyteller",
        "train the story model with attention codebooks from scratch (CPU, ~20 min), save it, print its metrics",
        "storyteller",
        "--joint-steps",
    )
    args = parser.parse_args(argv)
    if args.command == "lab":
        _lab(parser, args)
    elif args.command == "demo":
        from .demo import run_demo

        for flag, value in (("--steps", args.steps), ("--base-steps", args.base_steps)):
            if value < 1:
                parser.error(f"{flag} {value} is not valid; give a positive number of steps.")
        run_demo(steps=args.steps, base_steps=args.base_steps, seed=args.seed, progress=not args.no_progress)
    else:
        _train(parser, args)
    return 0


def _lab(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    import os

    from .errors import CodebookError
    from .lab import lab_command

    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port {args.port} is not valid; give a port number from 1 to 65535.")
    try:
        command = lab_command(args.folder, args.port, browser=not args.no_browser)
    except CodebookError as err:
        parser.exit(1, f"cbwidgets lab: {err}\n")
    os.execv(command[0], command)  # JupyterLab takes over this process (Ctrl+C stops it as usual)


def _recipe_command(
    commands: argparse._SubParsersAction, name: str, help: str, out: str, old_flag: str
) -> argparse.ArgumentParser:
    """Both shipped models' training commands take the same options (their recipes share one shape)."""
    command = commands.add_parser(name, help=help)
    command.add_argument("--out", default=out, help=f"folder to save the model in (default ./{out})")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--base-steps", type=int, default=None, help="base-model steps (default: the recipe's)")
    command.add_argument(
        "--finetune-steps",
        old_flag,
        dest="finetune_steps",
        type=int,
        default=None,
        help=f"steps with the codes on after k-means (default: the recipe's; {old_flag} is the old name)",
    )
    command.add_argument(
        "--float32", action="store_true", help="save float32 weights (default: float16, half the size)"
    )
    command.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return command


def _train(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from .recipe import print_report

    if args.command == "train-fsm":
        from .tokfsm.default import FSMRecipe, save_default, train_default
        from .tokfsm.world import TokFSM

        fsm_recipe = _recipe(parser, args, FSMRecipe())
        trained = train_default(fsm_recipe, TokFSM(), progress=not args.no_progress, measure=True)
        folder = save_default(trained, args.out, half=not args.float32)
        print_report(trained, folder, "cbwidgets.tokfsm.load_default", sys.stdout)
    else:
        from .stories.storyteller import StoryRecipe, save_storyteller, train_storyteller

        story_recipe = _recipe(parser, args, StoryRecipe())
        trained = train_storyteller(story_recipe, progress=not args.no_progress)
        folder = save_storyteller(trained, args.out, half=not args.float32)
        print_report(trained, folder, "cbwidgets.storyteller", sys.stdout, "Held-out stories (loss in nats per token):")


def _recipe(parser: argparse.ArgumentParser, args: argparse.Namespace, recipe: R) -> R:
    from .errors import CodebookError

    changes = {"seed": args.seed}
    for flag, name in (("--base-steps", "base_steps"), ("--finetune-steps", "finetune_steps")):
        value = getattr(args, name)
        if value is not None:
            if value < 0:
                parser.error(f"{flag} {value} is not valid; give 0 or a positive number of steps.")
            changes[name] = value
    if getattr(args, "rotary_layers", None) is not None:
        changes["rotary_layers"] = args.rotary_layers
    try:
        return replace(recipe, **changes)
    except CodebookError as err:
        parser.error(str(err))


if __name__ == "__main__":
    sys.exit(main())
