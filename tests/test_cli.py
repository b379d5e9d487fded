"""The command-line demo, run for real (few steps) in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cbwidgets.cli import main


def test_demo_command_trains_and_prints_codes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cbwidgets", "demo", "--steps", "20", "--base-steps", "40", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "Which codes fire on which tokens" in out
    assert "0.mlp" in out and "1.mlp" in out and "<bos>" in out
    assert "Ablating code 1.mlp." in out
    assert "Total variation between the two distributions" in out


def test_demo_rejects_bad_steps(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--steps", "0"])
    assert exit_.value.code == 2
    assert "--steps 0 is not valid" in capsys.readouterr().err


def test_demo_progress_bars_show_the_loss_it_reports_and_no_codebook_figures_while_they_are_off() -> None:
    import re

    done = subprocess.run(
        [sys.executable, "-m", "cbwidgets", "demo", "--steps", "25", "--base-steps", "50"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    frames = [f for f in re.split(r"[\r\n]", done.stderr) if f.startswith("training")]
    base = [f for f in frames if "50/50" in f]
    joint = [f for f in frames if "25/25" in f]
    assert base and joint, done.stderr[-2000:]
    assert "lm_loss=" in base[-1] and "used" not in base[-1] and "recon" not in base[-1]  # codebooks were off
    reported = re.search(r"LM loss (\d\.\d{3}) with the codebooks on", done.stdout)
    assert reported is not None, done.stdout
    assert f"lm_loss={reported.group(1)}" in joint[-1] and "recon=" in joint[-1] and "used=" in joint[-1]
    assert "squared distance summed over the 10 codebooks" in done.stdout
