"""How a post-training stage's TRL processes start (issue 19): the command, from the recipe's `execution`.

- one process (a CPU, or one GPU): the stage runs in the `run` process itself (`alone`), which has the
  engines imported already - a process of its own would add ~25 s of imports on a 2-core machine, and
  accelerate's launcher more;
- several on this machine (one per GPU, or QWEN3_RECIPE_NPROC): `accelerate launch --multi_gpu`
  (torchrun underneath; on CPU the worker's `use_cpu` makes it gloo);
- inside a Slurm allocation (launch/sbatch.py exports QWEN3_RECIPE_NNODES, _NPROC and _HEAD, as for the
  torchtitan stages): one `accelerate launch` per node through srun, machine rank = $SLURM_NODEID,
  meeting at the allocation's first node.
`execution.fsdp: full` shards the policy with FSDP2 (one unit per decoder layer) when there is more than
one process; `mixed_precision` and `activation_checkpointing` reach TRL through trl_lowering.precision_args.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

WORKER = "qwen3_recipe.posttrain.trl_worker"
RAY_DRIVER = "qwen3_recipe.posttrain.trl_ray"
RENDEZVOUS_PORT = 29500
DECODER_LAYERS = {"qwen3": "Qwen3DecoderLayer", "qwen3_moe": "Qwen3MoeDecoderLayer"}


def fsdp_args(execution: dict, model_type: str) -> list[str]:
    """FSDP2 over the decoder layers; checkpoints sharded (each process saves its own shards: no process
    gathers the model and its optimizer state), the export gathered by trl_rollouts.policy_state_dict."""
    if execution.get("fsdp", "none") != "full":
        return []
    if model_type not in DECODER_LAYERS:
        raise ValueError(f"FSDP wraps decoder layers of {', '.join(DECODER_LAYERS)} models, not {model_type!r}")
    return ["--use_fsdp", "--fsdp_version", "2", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
            "--fsdp_transformer_layer_cls_to_wrap", DECODER_LAYERS[model_type],
            "--fsdp_reshard_after_forward", "true", "--fsdp_state_dict_type", "SHARDED_STATE_DICT"]


def processes(env: dict | None = None) -> tuple[int, int, str | None]:
    """(nodes, processes per node, the head node inside a Slurm allocation) where the stage runs."""
    from qwen3_recipe.train.launch import local_devices
    env = os.environ if env is None else env
    return (int(env.get("QWEN3_RECIPE_NNODES", "1")), int(env.get("QWEN3_RECIPE_NPROC") or local_devices()),
            env.get("QWEN3_RECIPE_HEAD"))


def alone(env: dict | None = None) -> bool:
    """One process on this machine, outside a Slurm allocation."""
    nnodes, nproc, head = processes(env)
    return nnodes * nproc == 1 and not head


def launch_args(execution: dict, model_type: str, processes: int, machines: int = 1) -> list[str]:
    """`accelerate launch`'s flags for the stage's processes (before its machine rank, rendezvous and script)."""
    # accelerate takes one of --multi_gpu (DDP) and --use_fsdp
    distributed = fsdp_args(execution, model_type) or ["--multi_gpu"]
    return [*distributed, "--num_processes", str(processes), "--num_machines", str(machines),
            "--mixed_precision", "bf16" if execution.get("mixed_precision") == "bf16" else "no",
            "--dynamo_backend", "no"]


def worker_command(spec: Path, execution: dict, model_type: str = "qwen3", env: dict | None = None) -> list[str]:
    """The command that runs the stage's processes, from where it runs (env: os.environ by default); for one
    process, what would run it in a process of its own. `execution.executor: ray`: posttrain/trl_ray.py's driver,
    which starts them as Ray Train workers."""
    from qwen3_recipe.train.launch import free_port, srun_cpus
    nnodes, nproc, head = processes(env)
    if execution.get("executor") == "ray":
        return [sys.executable, "-m", RAY_DRIVER, str(spec)]
    if alone(env):
        return [sys.executable, "-m", WORKER, str(spec)]
    launch = [sys.executable, "-m", "accelerate.commands.launch", *launch_args(execution, model_type, nnodes * nproc,
                                                                                nnodes)]
    if not head:
        return launch + ["--main_process_port", str(free_port()), "-m", WORKER, str(spec)]
    per_node = launch + ["--machine_rank", "$SLURM_NODEID", "--main_process_ip", head,
                         "--main_process_port", str(RENDEZVOUS_PORT), "--same_network", "-m", WORKER, str(spec)]
    # $SLURM_NODEID is each node's own: expanded by the shell srun starts there
    inner = " ".join(a if a == "$SLURM_NODEID" else shlex.quote(a) for a in per_node)
    env = os.environ if env is None else env
    # with rollout servers on the allocation's last nodes (launch/rollout_servers.py), the trainers on its first
    first = ["--relative=0"] if env.get("QWEN3_RECIPE_ROLLOUT_NODES") else []
    return ["srun", f"--nodes={nnodes}", *first, "--ntasks-per-node=1", *srun_cpus(env), "--kill-on-bad-exit=1",
            "bash", "-c", inner]

