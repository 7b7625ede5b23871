"""One process of a reasoning_rl (GRPO) stage on TRL, as posttrain/trl_launch.py starts it (issue 19):

    python -m qwen3_recipe.posttrain.trl_worker SPEC                       (one process)
    accelerate launch --multi_gpu --num_processes N [--num_machines M ...] -m qwen3_recipe.posttrain.trl_worker SPEC

SPEC (JSON, written by posttrain/trl_stage.py) holds what the process needs and nothing it must re-derive: the
weights to start from, the stage's lowered settings (stage_plan.py: `grpo`, `lr`, `optimizer`, `seed`,
`checkpoints`), its training and held-out prompts, the verifier, the rollout engine's kind, the provenance
folder and job name, the stage folder, the `execution` block and the export settings. Each process samples
its own share of the groups with its own rollout engine, scores them with our verifier, and TRL gathers the
rewards for the group advantages and averages the gradients (DDP, or FSDP2 by accelerate's launch flags).
Without a GPU, `use_cpu` makes accelerate use gloo.

Provenance: each process writes its own rollouts (`rank` = its process index), process 0 the step metrics,
the held-out reward before and after (the `eval-*` shards) and `dump/metrics.jsonl`; a killed stage resumes
from its last whole TRL checkpoint and rewrites the same shards. Process 0 exports the trained weights to
`<stage>/hf` as every stage does (train/export.save_hf_weights: config.json with the recipe's RoPE scaling,
the tokenizer files): what the next stage starts from.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

SPEC = "trl_spec.json"
SUMMARY = "trl_summary.json"


def main(argv: list[str] | None = None) -> None:
    from qwen3_recipe.train.launch import die_with_parent
    die_with_parent()  # a killed launcher (and the `run` above it) takes its workers along
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    RUNS[spec.get("kind", "reasoning_rl")](spec)


def run_reasoning_rl(spec: dict, on_row=None) -> None:
    """The stage in this process (one of its processes, or the only one: then `on_row` may follow its steps)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain.grpo import HELDOUT_SAMPLES, mean_reward, verifier_reward
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_grpo import last_checkpoint, train_grpo
    from qwen3_recipe.posttrain.trl_lowering import grpo_args
    from qwen3_recipe.posttrain.trl_rollouts import policy_state_dict
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.synth.model_view import native_rope
    from qwen3_recipe.synth.prompts import Prompt
    from qwen3_recipe.verify.isolation import set_policy
    from qwen3_recipe.verify.verifiers import build_verifier

    lowered, folder = spec["lowered"], Path(spec["out"])
    set_policy(lowered.get("sandbox", "strict"))
    s = GRPOSettings(**lowered["grpo"])
    processes, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    use_cpu = not torch.cuda.is_available()
    args = grpo_args(lowered, folder, spec.get("execution"), processes) | {"use_cpu": use_cpu}
    prompts, heldout = ([Prompt(**p) for p in spec[k]] for k in ("prompts", "heldout"))
    prov, job, stage = Path(spec["provenance"]), spec["job"], spec["stage"]
    if rank == 0:
        drop_shards_after(prov, last_checkpoint(Path(args["output_dir"])))
    verifier = build_verifier(lowered["verifier"])
    # torchtitan trains without the export's YaRN, and so do we (synth/model_view.py): the rollouts'
    # log-probabilities and the policy's must be one model's
    init = native_rope(Path(spec["init"]))
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    mine = heldout[rank::processes]  # each process scores its share of the held-out prompts

    with rollout_engine(init, s.max_response_tokens, kind=spec.get("engine")) as engine:
        before = mean_reward(engine, None, mine, verifier, s) if mine else 0.0  # the engine holds `init`
        trainer, _ = train_grpo(model, AutoTokenizer.from_pretrained(init), engine, prompts,
                                verifier_reward(verifier), s, args, stage=stage,
                                metrics_path=folder / "dump" / "metrics.jsonl", on_row=on_row,
                                recorder_for=lambda step, rank: ShardRecorder(prov, job, f"step-{step:06d}", rank))
        weights = policy_state_dict(trainer)  # every process (FSDP gathers shards)
        after = mean_reward(engine, weights, mine, verifier, s) if mine else 0.0
    accelerator = trainer.accelerator
    n = len(mine) * HELDOUT_SAMPLES
    totals = accelerator.reduce(torch.tensor([before * n, after * n, n], dtype=torch.float64,
                                             device=accelerator.device), reduction="sum").tolist()
    held = {step: {"heldout_reward": total / totals[2]} for step, total in ((0, totals[0]), (s.steps, totals[1]))}
    finish(spec, accelerator, weights, held if heldout else {}, "heldout_reward")


def run_distill_onpolicy(spec: dict, on_row=None) -> None:
    """On-policy distillation on TRL's GKD trainer (posttrain/trl_distill.py): held-out KL to the teacher
    before and after over every process's share, the export from process 0."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain import trl_distill as D
    from qwen3_recipe.posttrain.rollout_engine import rollout_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_grpo import last_checkpoint
    from qwen3_recipe.posttrain.trl_lowering import gkd_args
    from qwen3_recipe.posttrain.trl_rollouts import checkpoint_weights, policy_state_dict
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.synth.model_view import native_rope
    from qwen3_recipe.synth.prompts import Prompt

    lowered, folder = spec["lowered"], Path(spec["out"])
    s = GRPOSettings(**lowered["grpo"])
    processes, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    use_cpu = not torch.cuda.is_available()
    args = gkd_args(lowered, folder, spec.get("execution"), processes) | {"use_cpu": use_cpu}
    prompts, heldout = ([Prompt(**p) for p in spec[k]] for k in ("prompts", "heldout"))
    prov, job, stage, modes = Path(spec["provenance"]), spec["job"], spec["stage"], lowered["modes"]
    if rank == 0:
        drop_shards_after(prov, last_checkpoint(Path(args["output_dir"])))
    init = native_rope(Path(spec["init"]))
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    teacher = AutoModelForCausalLM.from_pretrained(native_rope(Path(lowered["teacher"])), dtype=torch.float32)
    mine = heldout[rank::processes]

    with rollout_engine(init, s.max_response_tokens, kind=spec.get("engine")) as engine:
        start = checkpoint_weights(model)
        trainer = D.onpolicy_trainer(model, teacher, AutoTokenizer.from_pretrained(init), engine, prompts, s, args,
                                   modes=modes, direction=lowered["kl"], stage=stage, on_row=on_row,
                                   metrics_path=folder / "dump" / "metrics.jsonl",
                                   recorder_for=lambda step, r: ShardRecorder(prov, job, f"step-{step:06d}", r))
        # both sides scored by the models as the trainer prepared them (device, precision)
        student = trainer.accelerator.unwrap_model(trainer.model)
        kl_args = (engine, D.HFScorer(trainer.teacher_model), mine, modes, s.max_response_tokens, s.seed)
        before = D.heldout_kl_sums(D.HFScorer(student, start), *kl_args)
        D.resume_and_train(trainer)
        weights = policy_state_dict(trainer)
        after = D.heldout_kl_sums(D.HFScorer(student, weights), *kl_args)
    accelerator = trainer.accelerator
    sums = accelerator.reduce(torch.stack([before, after]).to(accelerator.device), reduction="sum").cpu().tolist()
    held = {0: D.heldout_kl_of(sums[0]), s.steps: D.heldout_kl_of(sums[1])}
    finish(spec, accelerator, weights, held if heldout else {}, "heldout_kl")


def finish(spec: dict, accelerator, weights: dict, held: dict[int, dict], key: str) -> None:
    """Every process: say which one it was (in the log). Process 0: the held-out numbers before and after
    ({step: metrics}) as `eval-*` shards, the export, and the summary the runner reads (`key` of each step)."""
    from qwen3_recipe.posttrain.rollouts import step_rows
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.train.export import save_hf_weights
    state, folder = accelerator.state, Path(spec["out"])
    print(f"trl_worker: process {state.process_index} of {state.num_processes}, {state.distributed_type}, "
          f"backend {state.backend}", flush=True)
    if accelerator.is_main_process:
        for step, metrics in held.items():
            rec = ShardRecorder(Path(spec["provenance"]), spec["job"], f"eval-{step:06d}", 0)
            step_rows(rec, spec["stage"], spec.get("kind", "reasoning_rl"), step, metrics)
            rec.close()
        save_hf_weights(weights, folder / "hf", spec["export"])
        summary = {f"{key}_{step}": metrics[key] for step, metrics in held.items()}
        (folder / SUMMARY).write_text(json.dumps(summary) + "\n")
    accelerator.wait_for_everyone()


def drop_shards_after(provenance: Path, checkpoint: Path | None) -> None:
    """Step shards past the checkpoint a stage resumes from (all of them without one): the resumed steps write
    theirs again, and a shard of a rank the rerun does not have (fewer processes than before) must not stay."""
    from qwen3_recipe.posttrain.trl_grpo import checkpoint_step
    done = checkpoint_step(checkpoint)
    for table in ("rollouts", "train_steps"):
        for f in (provenance / table).glob("step-*.parquet"):
            if int(f.name.split("-")[1]) > done:
                f.unlink()


RUNS = {"reasoning_rl": run_reasoning_rl, "distill_onpolicy": run_distill_onpolicy}  # by job kind

if __name__ == "__main__":
    main()
