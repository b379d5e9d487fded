"""What the TrainingMonitor costs a training run, measured inside a real Jupyter kernel.

The kernel trains the default TokFSM model's codebooks (the recipe's finetune phase) with a log
every step (the monitor's worst case: a callback every step), once with no callback and once with
a displayed TrainingMonitor whose updates go out over the kernel's IOPub channel to this process.
Rounds alternate so drift in the machine's speed falls on both alike. Prints the median seconds
per step of each and their ratio (target: at most 1.05), and the time spent inside the monitor's
calls (timed around each), which the noise of two whole runs does not blur.

    python benchmarks/monitor_overhead.py [--steps 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics

from jupyter_client.manager import start_new_kernel

TARGET = 1.05

SETUP = """
import time, torch
from cbwidgets.tokfsm import FSMRecipe, TokFSM, load_default
from cbwidgets.tokfsm.default import fsm_data
from cbwidgets.train import TrainConfig, train
from cbwidgets.widgets import TrainingMonitor
model, fsm = load_default(), TokFSM()
batches = fsm_data(fsm, FSMRecipe()).batches(0)

spent = [0.0]  # seconds inside the monitor's calls, measured around each

def timed(monitor):
    def call(metrics):
        clock = time.perf_counter()
        monitor(metrics)
        spent[0] += time.perf_counter() - clock
    call.finish = monitor.finish
    return call

def per_step(steps, callbacks):
    config = TrainConfig(steps=steps, batch_size=16, log_every=1, freeze_base=True, progress=False)
    clock = time.perf_counter()
    train(model, batches, config, callbacks=callbacks)
    return (time.perf_counter() - clock) / steps
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    manager, client = start_new_kernel(kernel_name="python3")
    messages = {"comm": 0}

    def hear(msg: dict) -> None:
        if msg["msg_type"] in ("comm_open", "comm_msg"):
            messages["comm"] += 1

    def run(code: str) -> str:
        out: list[str] = []

        def hook(msg: dict) -> None:
            hear(msg)
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise RuntimeError("\n".join(msg["content"]["traceback"]))

        client.execute_interactive(code, timeout=1800, output_hook=hook)
        return "".join(out)

    try:
        run(SETUP)
        run("per_step(5, [])")  # warm-up: first-call costs fall on neither side
        plain, monitored = [], []
        for _ in range(args.rounds):
            plain.append(float(run(f"print(per_step({args.steps}, []))")))
            code = f"monitor = TrainingMonitor()\ndisplay(monitor)\nprint(per_step({args.steps}, [timed(monitor)]))"
            monitored.append(float(run(code)))
        updates, inside = json.loads(run("import json; print(json.dumps([len(monitor.steps), spent[0]]))"))
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    a, b = statistics.median(plain), statistics.median(monitored)
    print(f"{args.steps} steps x {args.rounds} rounds, a log every step, TokFSM default model (codebooks training)")
    print(f"  no callback:      {a * 1000:7.1f} ms/step  (rounds: {', '.join(f'{x * 1000:.1f}' for x in plain)})")
    print(f"  TrainingMonitor:  {b * 1000:7.1f} ms/step  (rounds: {', '.join(f'{x * 1000:.1f}' for x in monitored)})")
    print(f"  widget messages heard from the kernel: {messages['comm']}; points in the last chart: {updates}")
    share, each = inside / (sum(monitored) * args.steps), inside / (args.rounds * args.steps)
    print(f"  time inside the monitor's calls: {each * 1000:.2f} ms/step, {share:.2%} of the monitored runs")
    print(f"  ratio monitored / plain: {b / a:.3f}  (target <= {TARGET})")


if __name__ == "__main__":
    main()
