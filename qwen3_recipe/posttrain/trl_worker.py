"""One process of a GRPO stage on TRL, as `accelerate launch` starts it (issue 19):

    accelerate launch --multi_gpu --num_processes N [--num_machines M ...] -m qwen3_recipe.posttrain.trl_worker SPEC

SPEC (JSON) holds what the process needs and nothing it must re-derive: the weights to start from, the
stage's lowered settings (stage_plan.py: `grpo`, `lr`, `optimizer`, `seed`, `checkpoints`), the prompts, the
verifier, the rollout engine's kind, the provenance folder and job name, the output folder and the
`execution` block. Each process samples its own share of the groups with its own rollout engine, scores
them with our verifier, and TRL gathers the rewards for the group advantages and averages the gradients
(DDP; FSDP2 / ZeRO-3 by accelerate's config). Without a GPU, `use_cpu` makes accelerate use gloo.
Provenance: each process writes its own rollouts (`rank` = its process index), process 0 the step metrics;
process 0 exports the trained weights to `<out>/hf` in HF format (what the next stage starts from).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain.grpo import verifier_reward
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_grpo import train_grpo
    from qwen3_recipe.posttrain.trl_lowering import grpo_args
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.synth.prompts import Prompt
    from qwen3_recipe.verify.verifiers import build_verifier

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    lowered, out, init = spec["lowered"], Path(spec["out"]), Path(spec["init"])
    s = GRPOSettings(**lowered["grpo"])
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    use_cpu = not torch.cuda.is_available()
    args = grpo_args(lowered, out, spec.get("execution"), processes) | {"use_cpu": use_cpu}
    prompts = [Prompt(**p) for p in spec["prompts"]]
    prov, job = Path(spec["provenance"]), spec["job"]
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    with rollout_engine(init, s.max_response_tokens, kind=spec.get("engine")) as engine:
        trainer, _ = train_grpo(model, AutoTokenizer.from_pretrained(init), engine, prompts,
                                verifier_reward(build_verifier(spec["verifier"])), s, args, stage=spec["stage"],
                                recorder_for=lambda step, rank: ShardRecorder(prov, job, f"step-{step:06d}", rank))
    state = trainer.accelerator.state
    print(f"trl_worker: process {state.process_index} of {state.num_processes}, {state.distributed_type}, "
          f"backend {state.backend}", flush=True)
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        trainer.save_model(str(out / "hf"))
        trainer.processing_class.save_pretrained(str(out / "hf"))


if __name__ == "__main__":
    main()
