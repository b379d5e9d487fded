"""Run by tests/test_train.py under torchrun: trains a tiny model and writes what each process saw."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from cbwidgets.train import TrainConfig, train
from cbwidgets.widgets import TrainingMonitor
from tests.tiny import tiny_data, tiny_model


def main() -> None:
    out = Path(sys.argv[1])
    model = tiny_model("gpt_neox", revive_after=3)
    monitor = TrainingMonitor()  # each process has one; only the main process may feed it
    lazy = sys.argv[2:] == ["lazy"]
    config = TrainConfig(steps=12, batch_size=8, log_every=1, lazy_codes=lazy, progress=False)
    result = train(model, tiny_data(), config, callbacks=[monitor])
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    flat = torch.cat([p.detach().reshape(-1) for p in model.state_dict().values() if p.is_floating_point()])
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "world": world,
                "losses": result.history["loss"].tolist(),
                "revived": int(result.history["revived"].sum()),
                "monitor_points": len(monitor.history),
                "param_sha256": hashlib.sha256(flat.numpy().tobytes()).hexdigest(),
            }
        )
    )


if __name__ == "__main__":
    main()
