"""A TRL stage's processes on Ray (issue 19, `execution.executor: ray`): Ray Train's TorchTrainer starts them as
workers on the cluster at `execution.ray.address` (else a local instance), one GPU each where the cluster has GPUs,
else CPU workers meeting over gloo, and each runs posttrain/trl_worker.py on the stage's spec.

    python -m qwen3_recipe.posttrain.trl_ray SPEC        (as `run` starts it: its output and the workers' to trl.log)

accelerate has no Ray launcher, but its processes need only what a launcher gives them: Ray Train sets the
torch.distributed environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT, ACCELERATE_TORCH_DEVICE) and makes
the process group; what `accelerate launch` would add (FSDP2 over decoder layers, mixed precision) is accelerate's
own translation of the launch flags posttrain/trl_launch.py builds (`prepare_multi_gpu_env`), set in each worker.
Workers: QWEN3_RECIPE_NPROC, else the GPUs of the machine `run` runs on (one on CPU), as for local processes. On a
cluster of several machines the run directory must be on a file system they share (the spec, checkpoints,
provenance shards and export are written there, as on Slurm).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

WORKER_ENV_PREFIXES = ("ACCELERATE_", "FSDP_")  # what accelerate's launcher tells its processes


def accelerate_env(launch: list[str]) -> dict[str, str]:
    """The ACCELERATE_* and FSDP_* variables `accelerate launch <launch>` would set in its processes."""
    from accelerate.commands.launch import launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env
    args = launch_command_parser().parse_args(launch)
    args.main_process_port = None  # (its port check is the launcher's: Ray Train picks the rendezvous)
    env = prepare_multi_gpu_env(args)
    return {k: v for k, v in env.items() if k.startswith(WORKER_ENV_PREFIXES)}


def _train(config: dict) -> None:
    """One Ray Train worker: accelerate's settings, then the stage's worker."""
    os.environ.update(config["env"])
    from qwen3_recipe.posttrain.trl_worker import RUNS
    spec = json.loads(Path(config["spec"]).read_text())
    RUNS[spec["kind"]](spec)


def main(argv: list[str] | None = None) -> None:
    from qwen3_recipe.posttrain.trl_launch import launch_args, processes
    from qwen3_recipe.train.launch import die_with_parent, has_accelerator
    die_with_parent()  # a killed `run` takes the driver along (a local Ray instance goes with it)
    spec_path = Path((argv or sys.argv[1:])[0]).resolve()
    spec = json.loads(spec_path.read_text())
    execution, workers = spec["execution"], processes()[1]
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a local instance
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # plain text in trl.log
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    address = (execution.get("ray") or {}).get("address")
    local = {} if address else {"num_cpus": max(os.cpu_count() or 1, workers), "include_dashboard": False}
    # each worker's prints once in trl.log (Ray Train's print patch would log them a second time)
    ray.init(address=address, runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}}, **local)
    gpus = ray.cluster_resources().get("GPU", 0) > 0 if address else has_accelerator()
    env = {"TRL_EXPERIMENTAL_SILENCE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env |= accelerate_env(launch_args(execution, spec.get("model_type", "qwen3"), workers) + ["-m", "x"])
    folder = Path(spec["out"])
    trainer = TorchTrainer(_train, train_loop_config={"spec": str(spec_path), "env": env},
                           scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus),
                           run_config=RunConfig(name="trl", storage_path=str(folder / "ray")))
    print(f"trl_ray: {workers} Ray Train worker(s) {'on GPUs' if gpus else 'on CPUs (gloo)'} at "
          f"{address or 'a local instance'}", flush=True)
    trainer.fit()  # raises when a worker fails: `run` reports this log's tail
    ray.shutdown()


if __name__ == "__main__":
    main()
