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
