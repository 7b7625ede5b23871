"""A TRL stage's processes on Ray (issue 19, `execution.executor: ray`): Ray Train's TorchTrainer starts them as
workers on the cluster at `execution.ray.address` (else a local instance), one GPU each where the cluster has GPUs,
else CPU workers meeting over gloo, and each runs posttrain/trl_worker.py on the stage's spec.

    python -m qwen3_recipe.posttrain.trl_ray SPEC        (as `run` starts it: its output and the workers' to trl.log)

accelerate has no Ray launcher, but its processes need only what a launcher gives them: Ray Train sets the
torch.distributed environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT, ACCELERATE_TORCH_DEVICE) and makes
the process group; what `accelerate launch` would add (FSDP2 over decoder layers, mixed precision) is accelerate's
own translation of the launch flags posttrain/trl_launch.py builds (`prepare_multi_gpu_env`), set in each worker.
Workers: `execution.ray.workers`, else QWEN3_RECIPE_NPROC, else the GPUs of the machine `run` runs on (one on CPU;
posttrain/trl_stage.stage_env puts the recipe's count in QWEN3_RECIPE_NPROC). On a
cluster of several machines the run directory must be on a file system they share (the spec, checkpoints,
provenance shards and export are written there, as on Slurm).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

WORKER_ENV_PREFIXES = ("ACCELERATE_", "FSDP_")  # what accelerate's launcher tells its processes
PASSED_ON = ("QWEN3_RECIPE_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "VLLM_")  # (GPUs: Ray assigns them)


def accelerate_env(launch: list[str]) -> dict[str, str]:
    """The ACCELERATE_* and FSDP_* variables `accelerate launch <launch>` would set in its processes."""
    from accelerate.commands.launch import launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env
    args = launch_command_parser().parse_args(launch)
    args.main_process_port = None  # (its port check is the launcher's: Ray Train picks the rendezvous)
    env = prepare_multi_gpu_env(args)
    return {k: v for k, v in env.items() if k.startswith(WORKER_ENV_PREFIXES)}


def _train(config: dict) -> None:
    """One Ray Train worker: the stage's worker on the spec (its environment: worker_env, by the runtime env), in
    the driver's directory: Ray Train moves each worker into a trial folder of its own, where the spec's relative
    paths (a run directory of `runs/<name>`) would put checkpoints, provenance and export out of the run."""
    from qwen3_recipe.posttrain.trl_worker import RUNS
    if Path(config["cwd"]).is_dir():  # (a cluster's run directory is on a shared file system: see the docstring)
        os.chdir(config["cwd"])
    spec = json.loads(Path(config["spec"]).read_text())
    RUNS[spec["kind"]](spec)


def worker_env(spec: dict, workers: int) -> dict[str, str]:
    """What every worker needs beside Ray Train's torch.distributed variables: accelerate's settings, and ours and
    Hugging Face's from this environment (a remote cluster's workers do not inherit it)."""
    from qwen3_recipe.posttrain.trl_launch import launch_args
    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ON)}
    env |= {"TRL_EXPERIMENTAL_SILENCE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}  # each worker's prints once in trl.log, not logged again
    return env | accelerate_env(launch_args(spec["execution"], spec.get("model_type", "qwen3"), workers) + ["-m", "x"])


def main(argv: list[str] | None = None) -> None:
    from qwen3_recipe.posttrain.trl_launch import processes
    from qwen3_recipe.posttrain.trl_worker import colocated_vllm
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

    import qwen3_recipe
    address = (execution.get("ray") or {}).get("address")
    env = worker_env(spec, workers)
    if colocated_vllm(spec):
        # each worker sees only its GPU: vLLM's in-process engine takes the first visible one (trl_worker.keep_own_gpu)
        env["TRAIN_ENABLE_SHARE_CUDA_VISIBLE_DEVICES"] = "0"
        os.environ["TRAIN_ENABLE_SHARE_CUDA_VISIBLE_DEVICES"] = "0"  # (read by Ray Train's controller)
    runtime = {"env_vars": env} | ({"py_modules": [qwen3_recipe]} if address else {})  # our code, on a cluster
    local = {} if address else {"num_cpus": max(os.cpu_count() or 1, workers), "include_dashboard": False}
    ray.init(address=address, runtime_env=runtime, **local)
    gpus = ray.cluster_resources().get("GPU", 0) > 0 if address else has_accelerator()
    if execution.get("fsdp") == "full" and workers > 1 and not gpus:
        raise SystemExit("trl_ray: execution.fsdp: full needs GPUs (accelerate runs FSDP on GPUs only) and the Ray "
                         f"cluster at {address} has none: set execution.fsdp: none")
    trainer = TorchTrainer(_train, train_loop_config={"spec": str(spec_path), "cwd": os.getcwd()},
                           scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus),
                           run_config=RunConfig(name="trl", storage_path=str((Path(spec["out"]) / "ray").resolve())))
    print(f"trl_ray: {workers} Ray Train worker(s) {'on GPUs' if gpus else 'on CPUs (gloo)'} at "
          f"{address or 'a local instance'}", flush=True)
    trainer.fit()  # raises when a worker fails: `run` reports this log's tail
    ray.shutdown()


if __name__ == "__main__":
    main()
