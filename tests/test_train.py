"""Training: the loss falls, resume is exact, several processes stay in sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cbwidgets.errors import CodebookError
from cbwidgets.train import TrainConfig, batch_for_step, train
from tests.jupyter import free_port
from tests.tiny import tiny_data, tiny_model

ROOT = Path(__file__).resolve().parents[1]


def test_reconstruction_loss_falls_and_metrics_are_reported() -> None:
    model = tiny_model("gpt_neox", num_codes=32, revive_after=5)
    seen: list[dict] = []
    result = train(
        model,
        tiny_data(),
        TrainConfig(steps=40, batch_size=8, log_every=5, progress=False),
        callbacks=[seen.append],
    )
    history = result.history
    assert list(history["step"]) == [5, 10, 15, 20, 25, 30, 35, 40]
    assert seen == history.to_dict("records")
    assert history["reconstruction"].iloc[-1] < 0.5 * history["reconstruction"].iloc[0]
    assert history["lm_loss"].iloc[-1] < history["lm_loss"].iloc[0]
    for column in ("reconstruction/layers.0.mlp", "used_share", "dead", "revived", "lr", "seconds"):
        assert column in history
    assert history["revived"].sum() > 0
    assert 0 < history["used_share"].iloc[-1] <= 1
    assert not model.training  # left in eval mode for reading


def test_frozen_base_is_untouched_and_codebooks_have_no_weight_decay() -> None:
    model = tiny_model("gpt2")
    base = {k: v.clone() for k, v in model.model.state_dict().items()}
    codes = model.attached["layers.0.mlp"].vectors.detach().clone()
    train(model, tiny_data(), TrainConfig(steps=5, batch_size=8, freeze_base=True, progress=False))
    assert all(torch.equal(base[k], v) for k, v in model.model.state_dict().items())
    assert not torch.equal(codes, model.attached["layers.0.mlp"].vectors.detach())
    assert all(p.requires_grad for p in model.model.parameters())  # flags restored afterwards

    from cbwidgets.train import _param_groups

    groups = _param_groups(model, TrainConfig(weight_decay=0.1))
    books = [g for g in groups if g["name"] == "codebooks"]
    assert books[0]["weight_decay"] == 0.0
    assert {id(p) for p in books[0]["params"]} == {id(p) for p in model.codebook_parameters()}
    assert any(g["weight_decay"] == 0.1 for g in groups)


def test_resume_after_interruption_reproduces_the_curve(tmp_path: Path) -> None:
    config = TrainConfig(
        steps=16,
        batch_size=8,
        log_every=1,
        progress=False,
        checkpoint_every=6,
        checkpoint_dir=str(tmp_path / "ck"),
    )
    straight = train(
        tiny_model(revive_after=3),
        tiny_data(),
        TrainConfig(steps=16, batch_size=8, log_every=1, progress=False),
    )

    def interrupt(metrics: dict) -> None:
        if metrics["step"] == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(revive_after=3), tiny_data(), config, callbacks=[interrupt])
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["step-6"]
    resumed_model = tiny_model(revive_after=3)
    resumed = train(resumed_model, tiny_data(), config, resume=True)
    assert resumed.history["loss"].tolist() == straight.history["loss"].tolist()
    assert resumed.history["revived"].tolist() == straight.history["revived"].tolist()


def test_batches_are_a_function_of_the_step() -> None:
    data = tiny_data(20, 4)
    a = batch_for_step(data, 7, 6, seed=1)
    assert torch.equal(a, batch_for_step(data, 7, 6, seed=1))
    epoch = torch.cat([batch_for_step(data, s, 5, seed=1) for s in range(4)])
    assert sorted(map(tuple, epoch.tolist())) == sorted(map(tuple, data.tolist()))


def test_training_refuses_bad_setups(tmp_path: Path) -> None:
    with pytest.raises(CodebookError, match="fewer than batch_size=128"):
        train(tiny_model(), tiny_data(), TrainConfig(steps=1, batch_size=128, progress=False))
    with pytest.raises(CodebookError, match="token ids"):
        train(tiny_model(), tiny_data().float(), TrainConfig(steps=1, progress=False))
    with pytest.raises(CodebookError, match="holds no step-N checkpoint"):
        train(
            tiny_model(),
            tiny_data(),
            TrainConfig(steps=1, progress=False, checkpoint_dir=str(tmp_path)),
            resume=True,
        )
    with pytest.raises(CodebookError, match="mixed_precision='fp8'"):
        TrainConfig(mixed_precision="fp8")


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["dense", "lazy"])
def test_two_cpu_processes_stay_in_sync(tmp_path: Path, optimizer: str) -> None:
    """With lazy_codes too: the rows it updates come from the gradient after the processes' sum."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(ROOT / "tests" / "ddp_worker.py"),
        str(tmp_path),
        optimizer,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["param_sha256"] == ranks[1]["param_sha256"]  # bit-identical parameters
    assert ranks[0]["losses"] == ranks[1]["losses"]
    assert ranks[0]["revived"] == ranks[1]["revived"] > 0  # revival happened, identically
    assert [r["monitor_points"] for r in ranks] == [12, 0]  # only rank 0's TrainingMonitor reports

    single = tmp_path / "single"
    single.mkdir()
    solo = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "ddp_worker.py"), str(single), optimizer],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert solo.returncode == 0, solo.stderr[-3000:]
    one = json.loads((single / "rank0.json").read_text())
    assert one["world"] == 1 and one["monitor_points"] == 12
    # the same global batches, split in two: the curve matches a single process up to float reordering
    assert one["revived"] == ranks[0]["revived"]
    assert max(abs(a - b) for a, b in zip(one["losses"], ranks[0]["losses"], strict=True)) < 1e-3


def test_bf16_mixed_precision_trains_and_keeps_float32_codes() -> None:
    """Also: a notebook can train in float32 and then in bf16 in the same process."""
    model = tiny_model("llama", revive_after=3)
    train(model, tiny_data(), TrainConfig(steps=2, batch_size=8, progress=False))
    result = train(
        model, tiny_data(), TrainConfig(steps=20, batch_size=8, log_every=5, mixed_precision="bf16", progress=False)
    )
    assert result.history["reconstruction"].iloc[-1] < 0.6 * result.history["reconstruction"].iloc[0]
    assert all(cb.vectors.dtype == torch.float32 for cb in model.attached.values())
