"""One process of a post-training stage on TRL (reasoning_rl, general_rl, distill_offpolicy, distill_onpolicy:
`RUNS`), as posttrain/trl_launch.py starts it (issue 19):

    python -m qwen3_recipe.posttrain.trl_worker SPEC                       (one process)
    accelerate launch --multi_gpu --num_processes N [--num_machines M ...] -m qwen3_recipe.posttrain.trl_worker SPEC

SPEC (JSON, written by posttrain/trl_stage.py) holds what the process needs and nothing it must re-derive: the
job's kind, the weights to start from, the stage's lowered settings (stage_plan.py), its step count, its
training and held-out prompts, the rollout engine's kind, the provenance folder and job name, the stage folder,
the `execution` block and the export settings. Each process samples its own share of the step with its own
rollout engine and scores it with our verifiers and rewards; TRL averages the gradients (DDP, or FSDP2 by
accelerate's launch flags). Without a GPU, `use_cpu` makes accelerate use gloo.

Provenance: each process writes its own rollouts (`rank` = its process index), process 0 the step metrics,
the held-out numbers before and after (the `eval-*` shards) and `dump/metrics.jsonl`; a killed stage resumes
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
DPO_EXPORT = "dpo/hf"  # general_rl's DPO phase's weights in its dump folder (whole once it exists)


def main(argv: list[str] | None = None) -> None:
    from qwen3_recipe.train.launch import die_with_parent
    die_with_parent()  # a killed launcher (and the `run` above it) takes its workers along
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    if colocated_vllm(spec):
        keep_own_gpu(os.environ)
    RUNS[spec.get("kind", "reasoning_rl")](spec)


def colocated_vllm(spec: dict) -> bool:
    """Whether each process holds a vLLM engine of its own (no rollout servers, the vLLM engine)."""
    return not spec.get("rollout_servers") and (spec.get("engine") or "vllm") == "vllm"


def keep_own_gpu(env) -> None:
    """One of several processes on a machine keeps only its own GPU (the LOCAL_RANK-th it sees) before anything
    touches CUDA: vLLM's in-process engine takes the first visible GPU whatever the rank, and accelerate then picks
    local rank % 1 = 0, the same one. (NCCL then cannot use P2P between the processes; rollout servers keep it.)"""
    local, preset = env.get("LOCAL_RANK"), env.get("CUDA_VISIBLE_DEVICES")
    if local is None or int(env.get("LOCAL_WORLD_SIZE", "1")) < 2 or preset == "":  # one process, or CPUs
        return
    visible = preset.split(",") if preset else [str(i) for i in range(int(env["LOCAL_WORLD_SIZE"]))]
    if int(local) >= len(visible):  # (trl_stage.trainer_env refuses this for `run`; a hand launch gets this)
        raise SystemExit(f"trl_worker: process {local} of {env['LOCAL_WORLD_SIZE']} on this machine has no GPU of its "
                         f"own for its vLLM engine (CUDA_VISIBLE_DEVICES={preset}): one process per GPU")
    env["CUDA_VISIBLE_DEVICES"] = visible[int(local)].strip()


def run_reasoning_rl(spec: dict, on_row=None) -> None:
    """The stage in this process (one of its processes, or the only one: then `on_row` may follow its steps)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain.grpo import HELDOUT_SAMPLES, mean_reward, verifier_reward
    from qwen3_recipe.posttrain.rollout_engine import stage_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_grpo import train_grpo
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
        drop_shards_after(prov, resumed_at(folder / "dump", lowered))
    verifier = build_verifier(lowered["verifier"])
    # torchtitan trains without the export's YaRN, and so do we (synth/model_view.py): the rollouts'
    # log-probabilities and the policy's must be one model's
    init = native_rope(Path(spec["init"]))
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    mine = heldout[rank::processes]  # each process scores its share of the held-out prompts

    with stage_engine(spec, init) as engine:
        # every process, its share empty or not: a served engine's processes count each other's pushes
        before = mean_reward(engine, None, mine, verifier, s)  # the engine holds `init`
        trainer, _ = train_grpo(model, AutoTokenizer.from_pretrained(init), engine, prompts,
                                verifier_reward(verifier), s, args, stage=stage,
                                metrics_path=folder / "dump" / "metrics.jsonl", on_row=on_row,
                                recorder_for=lambda step, rank: ShardRecorder(prov, job, f"step-{step:06d}", rank))
        weights = policy_state_dict(trainer)  # every process (FSDP gathers shards)
        after = mean_reward(engine, weights, mine, verifier, s)
    accelerator = trainer.accelerator
    n = len(mine) * HELDOUT_SAMPLES
    totals = accelerator.reduce(torch.tensor([before * n, after * n, n], dtype=torch.float64,
                                             device=accelerator.device), reduction="sum").tolist()
    held = {step: {"heldout_reward": total / totals[2]} for step, total in ((0, totals[0]), (s.steps, totals[1]))} \
        if totals[2] else {}
    finish(spec, accelerator, weights, held, "heldout_reward")


def run_distill_onpolicy(spec: dict, on_row=None) -> None:
    """On-policy distillation on TRL's GKD trainer (posttrain/trl_distill.py)."""
    from qwen3_recipe.posttrain import trl_distill as D
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_lowering import gkd_args
    lowered = spec["lowered"]
    s = GRPOSettings(**lowered["grpo"])

    def build(model, teacher, tokenizer, engine, prompts, args, recorder_for, metrics_path):
        return D.onpolicy_trainer(model, teacher, tokenizer, engine, prompts, s, args, modes=lowered["modes"],
                                  direction=lowered["kl"], stage=spec["stage"], on_row=on_row,
                                  metrics_path=metrics_path, recorder_for=recorder_for)
    run_distill(spec, build, lambda processes: gkd_args(lowered, spec["out"], spec.get("execution"), processes),
                s.max_response_tokens)


def run_distill_offpolicy(spec: dict, on_row=None) -> None:
    """Off-policy distillation on TRL's SFTTrainer (posttrain/trl_offpolicy.py) over the teacher pass's samples."""
    from qwen3_recipe.posttrain.distill import load_samples
    from qwen3_recipe.posttrain.trl_lowering import offpolicy_args
    from qwen3_recipe.posttrain.trl_offpolicy import offpolicy_trainer
    lowered = spec["lowered"]
    samples = load_samples(Path(lowered["teacher_samples"]))

    def build(model, teacher, tokenizer, engine, prompts, args, recorder_for, metrics_path):
        return offpolicy_trainer(model, tokenizer, samples, args, kl_weight=lowered["kl_weight"],
                                 ce_weight=lowered["ce_weight"], stage=spec["stage"], on_row=on_row,
                                 metrics_path=metrics_path, recorder_for=recorder_for)
    run_distill(spec, build, lambda processes: offpolicy_args(lowered, spec["out"], spec["steps"],
                                                              spec.get("execution"), processes),
                lowered["max_tokens"])


def run_distill(spec: dict, build, args_for, max_tokens: int) -> None:
    """A distillation stage in this process: the trainer `build` makes (TRL's, its models prepared), the student's
    held-out KL to the teacher before and after over every process's share of the held-out prompts (both scored
    by the models as the trainer prepared them: device, precision), the export from process 0."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain import trl_distill as D
    from qwen3_recipe.posttrain.rollout_engine import stage_engine
    from qwen3_recipe.posttrain.trl_rollouts import checkpoint_weights, policy_state_dict
    from qwen3_recipe.posttrain.trl_steps import resume_and_train
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.synth.model_view import native_rope
    from qwen3_recipe.synth.prompts import Prompt

    lowered, folder = spec["lowered"], Path(spec["out"])
    processes, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    args = args_for(processes) | {"use_cpu": not torch.cuda.is_available()}
    prompts, heldout = ([Prompt(**p) for p in spec[k]] for k in ("prompts", "heldout"))
    prov, job = Path(spec["provenance"]), spec["job"]
    if rank == 0:
        drop_shards_after(prov, resumed_at(folder / "dump", lowered))
    init = native_rope(Path(spec["init"]))
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    teacher = AutoModelForCausalLM.from_pretrained(native_rope(Path(lowered["teacher"])), dtype=torch.float32)
    mine = heldout[rank::processes]

    with stage_engine(spec, init) as engine:
        start = checkpoint_weights(model)
        trainer = build(model, teacher, AutoTokenizer.from_pretrained(init), engine, prompts, args,
                        lambda step, r: ShardRecorder(prov, job, f"step-{step:06d}", r),
                        folder / "dump" / "metrics.jsonl")
        student = trainer.accelerator.unwrap_model(trainer.model)
        # the on-policy trainer prepared its teacher; the off-policy one has none (it trains on cached scores)
        scorer = getattr(trainer, "teacher_model", None) or teacher.to(trainer.accelerator.device)
        kl_args = (engine, D.HFScorer(scorer), mine, lowered["modes"], max_tokens, lowered["seed"])
        before = D.heldout_kl_sums(D.HFScorer(student, start), *kl_args)
        resume_and_train(trainer)
        weights = policy_state_dict(trainer)
        after = D.heldout_kl_sums(D.HFScorer(student, weights), *kl_args)
    accelerator = trainer.accelerator
    sums = accelerator.reduce(torch.stack([before, after]).to(accelerator.device), reduction="sum").cpu().tolist()
    held = {0: D.heldout_kl_of(sums[0]), int(args["max_steps"]): D.heldout_kl_of(sums[1])}
    finish(spec, accelerator, weights, held if heldout else {}, "heldout_kl")


def run_general_rl(spec: dict, on_row=None) -> None:
    """general_rl: DPO on the policy's own best/worst pairs (posttrain/trl_general_rl.py) for the first phase's
    steps, then policy gradient with the reward mix on our GRPO trainer, its k3 KL at `beta` to the stage's
    starting weights. The DPO phase's weights are kept as `dump/dpo/hf` (whole once it exists: the phase is
    done), which the policy-gradient phase starts from. The held-out chosen-over-rejected margin before and
    after, on pairs the starting policy sampled, over every process's share."""
    import gc

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qwen3_recipe.posttrain import trl_general_rl as G
    from qwen3_recipe.posttrain.general_rl import heldout_pairs
    from qwen3_recipe.posttrain.rewards import combined_reward
    from qwen3_recipe.posttrain.rollout_engine import stage_engine
    from qwen3_recipe.posttrain.stage_plan import GRPOSettings
    from qwen3_recipe.posttrain.trl_grpo import train_grpo
    from qwen3_recipe.posttrain.trl_lowering import dpo_args, general_rl_steps, grpo_args
    from qwen3_recipe.posttrain.trl_rollouts import policy_state_dict
    from qwen3_recipe.posttrain.trl_steps import resume_and_train
    from qwen3_recipe.provenance.recorder import ShardRecorder
    from qwen3_recipe.synth.model_view import native_rope
    from qwen3_recipe.synth.prompts import Prompt
    from qwen3_recipe.train.export import save_hf_weights
    from qwen3_recipe.verify.isolation import set_policy

    lowered, folder = spec["lowered"], Path(spec["out"])
    set_policy(lowered.get("sandbox", "strict"))
    s = GRPOSettings(**lowered["grpo"])
    dpo_steps, pg_steps = general_rl_steps(lowered)
    processes, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    use_cpu = not torch.cuda.is_available()
    prompts, heldout = ([Prompt(**p) for p in spec[k]] for k in ("prompts", "heldout"))
    prov, job, stage = Path(spec["provenance"]), spec["job"], spec["stage"]
    dump, dpo_done = folder / "dump", folder / "dump" / DPO_EXPORT
    if rank == 0:
        drop_shards_after(prov, resumed_at(dump, lowered))
    data = lowered["prompts"]
    # this process's GPU as accelerate will pick it (its set_device), without making the process group before the
    # trainer does (that would drop TrainingArguments' ddp_timeout)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = "cpu" if use_cpu else torch.device(os.environ.get("ACCELERATE_TORCH_DEVICE") or
                                                f"cuda:{local % torch.cuda.device_count()}")
    reward = combined_reward(lowered["rewards"], s.max_response_tokens, domain=data["domain"],
                             languages=data["languages"], device=device)
    if rank == 0:
        (folder / "rewards.json").write_text(json.dumps(reward.specs, indent=1) + "\n")
    init = native_rope(Path(spec["init"]))
    tokenizer = AutoTokenizer.from_pretrained(init)
    load = lambda path: AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)  # noqa: E731
    recorder_for = lambda step, r: ShardRecorder(prov, job, f"step-{step:06d}", r)  # noqa: E731
    metrics_path = dump / "metrics.jsonl"
    model = load(init)
    model.to(device)  # where the trainer will put it: the held-out margin before is scored there

    with stage_engine(spec, init) as engine:
        # the held-out pairs: sampled once by the starting policy (the engine holds `init`), each process its share
        pairs = heldout_pairs(engine, heldout[rank::processes], reward, s)
        before = G.margin_sums(model, pairs)
        trainer = None
        if dpo_steps and not (pg_steps and dpo_done.exists()):  # (DPO only: resumes at its end, for the export)
            args = dpo_args(lowered, folder, spec.get("execution"), processes, dpo_steps) | {"use_cpu": use_cpu}
            trainer = G.dpo_trainer(model, load(init), tokenizer, engine, prompts, reward, s, args, stage=stage,
                                    recorder_for=recorder_for, metrics_path=metrics_path, on_row=on_row)
            resume_and_train(trainer)
            weights = policy_state_dict(trainer)
            if pg_steps and trainer.accelerator.is_main_process:
                save_hf_weights(weights, dpo_done, spec["export"])
            trainer.accelerator.wait_for_everyone()
        if pg_steps:
            if dpo_steps:  # (the DPO trainer, if it ran, and its weights go before the next model comes)
                trainer = model = weights = None
                gc.collect()
                model = load(native_rope(dpo_done))
            # TRL loads the KL reference from the path the model names: the stage's starting weights
            model.config._name_or_path = str(init)
            pg = lowered | {"grpo": {**lowered["grpo"], "steps": pg_steps}}
            # its own prompt order (seed + 1): the DPO phase's seed would replay that phase's prompts step by step
            args = grpo_args(pg, folder, spec.get("execution"), processes, phase="pg") | {
                "use_cpu": use_cpu, "seed": int(lowered["seed"]) + 1}
            trainer, _ = train_grpo(model, tokenizer, engine, prompts, reward, GRPOSettings(**pg["grpo"]), args,
                                    stage=stage, kind="general_rl", metrics_path=metrics_path, on_row=on_row,
                                    recorder_for=recorder_for, offset=dpo_steps, extra={"phase": 1.0})
            weights = policy_state_dict(trainer)
        # scored as `before` was: the model itself, not accelerate's mixed-precision forward
        after = G.margin_sums(trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False), pairs)
    accelerator = trainer.accelerator
    sums = accelerator.reduce(torch.tensor([*before, after[0]], dtype=torch.float64, device=accelerator.device),
                              reduction="sum").tolist()
    n = sums[1]  # held-out pairs over all processes (none: every held-out group tied)
    held = {0: {"heldout_margin": sums[0] / n, "heldout_pairs": n},
            s.steps: {"heldout_margin": sums[2] / n}} if n else {}
    finish(spec, accelerator, weights, held, "heldout_margin")


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


def resumed_at(dump: Path, lowered: dict) -> int:
    """The steps a stage's checkpoints in `dump` hold, the step it resumes after (0: none). general_rl's: its
    DPO phase's, or all of them and its policy-gradient phase's once the DPO phase's weights are kept."""
    from qwen3_recipe.posttrain.trl_steps import checkpoint_step, last_checkpoint
    if "method" not in lowered:
        return checkpoint_step(last_checkpoint(dump))
    from qwen3_recipe.posttrain.trl_lowering import general_rl_steps
    dpo_steps, pg_steps = general_rl_steps(lowered)
    if pg_steps and (not dpo_steps or (dump / DPO_EXPORT).exists()):  # (rlhf: no DPO phase)
        return dpo_steps + checkpoint_step(last_checkpoint(dump / "pg"))
    return checkpoint_step(last_checkpoint(dump / "dpo"))


def drop_shards_after(provenance: Path, done: int) -> None:
    """Step shards past the step a stage resumes after (all of them at 0): the resumed steps write theirs
    again, and a shard of a rank the rerun does not have (fewer processes than before) must not stay."""
    for table in ("rollouts", "train_steps"):
        for f in (provenance / table).glob("step-*.parquet"):
            if int(f.name.split("-")[1]) > done:
                f.unlink()


RUNS = {"reasoning_rl": run_reasoning_rl, "general_rl": run_general_rl, "distill_offpolicy": run_distill_offpolicy,
        "distill_onpolicy": run_distill_onpolicy}  # by job kind

if __name__ == "__main__":
    main()
