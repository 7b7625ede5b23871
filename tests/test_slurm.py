"""The Slurm lowering: what `run --executor slurm` submits, against golden scripts (a fake `sbatch`
on PATH records each submission; rewrite with `pytest --update-golden`), reruns that submit only
unfinished work, and a whole run on a fake cluster that runs every job at submission."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import random
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, run_cli
from corpora import prose, write_project

# records its arguments and the script, answers like sbatch (a job id on stdout); with SBATCH_RUN
# set it also runs the job at once, each array task in turn - a valid schedule, since a job is
# only ever submitted after the jobs it depends on
FAKE_SBATCH = """#!/bin/bash
n=$(($(ls "$SBATCH_LOG" | wc -l) + 1001))
script="${@: -1}"
{ echo "ARGS: ${@:1:$#-1}"; cat "$script"; } > "$SBATCH_LOG/$n"
if [ -n "$SBATCH_RUN" ]; then
  last=$(sed -n 's/^#SBATCH --array=0-\\([0-9]*\\).*/\\1/p' "$script")
  for i in $(seq 0 "${last:-0}"); do
    env ${last:+SLURM_ARRAY_TASK_ID=$i} SLURM_JOB_ID=$n SLURM_NODELIST=localhost RUN_OFFSET=0 \\
      bash "$script" >> "$SBATCH_RUN/$n.out" 2>&1 || { echo "Slurm job $n task $i failed" >&2; exit 1; }
  done
fi
echo "$n"
"""
FAKE_SRUN = """#!/bin/bash
while [ $# -gt 0 ]; do case "$1" in -n|-N) shift 2;; -*) shift;; *) break;; esac; done
exec "$@"
"""
FAKE_SCONTROL = "#!/bin/bash\necho localhost\n"


@pytest.fixture
def cluster(tmp_path) -> tuple[dict, Path]:
    """PATH with the fake Slurm commands, and the folder where sbatch records submissions."""
    bin_dir, log = tmp_path / "bin", tmp_path / "sbatch-log"
    bin_dir.mkdir(), log.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SBATCH_LOG": str(log)}, log


def normalise(text: str, run_dir: Path) -> str:
    return (text.replace(str(run_dir.resolve()), "RUN_DIR").replace(sys.executable, "PYTHON")
            .replace(str(Path(sys.executable).parent), "PYTHON_BIN").replace(str(REPO), "REPO"))


def submitted(run: Path) -> dict[str, dict[str, str]]:
    """job -> {stage: Slurm job id}, from each job's submitted.json."""
    return {f.parent.name: json.loads(f.read_text())["slurm_jobs"] for f in (run / "jobs").glob("*/submitted.json")}


def args_of(log: Path, job_id: str) -> str:
    return (log / job_id).read_text().splitlines()[0]


def slurm_run(run: Path, env: dict):
    proc = run_cli("run", "recipes/tiny.yaml", "-o", str(run), "--only", "data", "--executor", "slurm",
                   "--set", "execution.slurm.partition=cpu", "--set", "execution.slurm.qos=high", "--set",
                   'execution.slurm.sbatch_args=["--constraint=cpu"]', "--set", "execution.workers=2", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_slurm_submissions_follow_the_dag(tmp_path, cluster, update_golden):
    env, log = cluster
    run = tmp_path / "run"
    proc = slurm_run(run, env)
    jobs = [line.split(":")[0].removeprefix("submitted ") for line in proc.stdout.splitlines()
            if line.startswith("submitted ")]
    assert jobs[:3] == ["data.web", "data.code", "data.math"] and jobs[-1] == "mix.s3_long_context"
    ids = submitted(run)
    # a data job: its stages chained with afterok, the first after every upstream job's last stage
    assert args_of(log, ids["data.web"]["finish"]).endswith(f"--dependency=afterok:{ids['data.web']['pipeline']}")
    dedup = list(ids["data.dedup"].values())
    assert list(ids["data.dedup"]) == ["exact-0-inputs", "exact-1-signatures", "exact-2-find", "exact-3-filter",
                                       "minhash-0-inputs", "minhash-1-signatures", "minhash-2-buckets",
                                       "minhash-3-cluster", "minhash-4-filter", "publish"]
    firsts = ":".join(ids[j]["finish"] for j in ("data.web", "data.code", "data.math", "data.worked", "data.cot"))
    assert args_of(log, dedup[0]).endswith(f"--dependency=afterok:{firsts}")
    for before, stage in itertools.pairwise(dedup):
        assert args_of(log, stage).endswith(f"--dependency=afterok:{before}")
    signatures = (log / ids["data.dedup"]["exact-1-signatures"]).read_text()
    # 5 sources of one file each (cot: the synth job's one parquet file): 5 tasks, at most 2 at once
    # (execution.workers)
    assert "#SBATCH --array=0-4%2" in signatures and "#SBATCH --partition=cpu" in signatures
    assert "#SBATCH --qos=high" in signatures and "#SBATCH --constraint=cpu" in signatures
    assert "#SBATCH --array=0-13%2" in (log / ids["data.dedup"]["minhash-2-buckets"]).read_text()  # num_buckets
    # the label job and the tokenizer stay one job each running the local runner; the label job waits
    # for dedup and the annotation, the tokenizer for the label job, the mixes for both
    label = (log / ids["quality.label"]["job"]).read_text()
    assert "--only quality.label --in-allocation" in label
    # inside its allocation the label pipeline runs on a local executor (a nested Slurm array would
    # return at once and leave the job done with nothing labelled)
    lowered = json.loads((run / "jobs" / "quality.label" / "lowered.json").read_text())
    assert lowered["lowered"]["executor"] == {"type": "local", "workers": 32}  # execution.slurm.cpus_per_task
    assert f"afterok:{dedup[-1]}:{ids['quality.annotate']['job']}" in label
    tokenizer = (log / ids["tokenizer"]["job"]).read_text()
    assert "--only tokenizer --in-allocation" in tokenizer and f"afterok:{ids['quality.label']['job']}" in tokenizer
    assert args_of(log, ids["mix.s1_general"]["mixture"]).endswith(
        f"--dependency=afterok:{ids['quality.label']['job']}:{ids['tokenizer']['job']}")
    assert list(ids["mix.s1_general"]) == ["mixture", "tokenize", "finish"]

    order = sorted((int(i), job, stage) for job, stages in ids.items() for stage, i in stages.items())
    assert [i for i, _, _ in order] == list(range(1001, 1001 + len(list(log.iterdir()))))
    text = "\n".join(f"=== {i} {job} {stage}\n{normalise((log / str(i)).read_text(), run)}"
                     for i, job, stage in order)
    golden = REPO / "tests/golden/slurm/tiny-data.txt"
    if update_golden:
        golden.write_text(text)
    assert golden.read_text() == text


def test_training_stage_asks_for_nodes_and_gpus(tmp_path, cluster, update_golden):
    """A pretraining stage: one sbatch job of N nodes x G GPUs after its data, running the local
    runner, which starts one torchrun per node through srun (golden script)."""
    env, log = cluster
    run = tmp_path / "run"
    proc = run_cli("run", "recipes/tiny.yaml", "-o", str(run), "--only", "pretrain.s1_general", "--executor", "slurm",
                   "--set", "execution.slurm.nodes=4", "--set", "execution.slurm.gpus_per_node=8",
                   "--set", "execution.slurm.partition=gpu", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = submitted(run)
    # submitted after everything it needs (data, tokenizer, its mix), after the mix's last stage
    last = max(ids, key=lambda job: max(int(i) for i in ids[job].values()))
    assert last == "pretrain.s1_general" and {"mix.s1_general", "tokenizer"} <= set(ids)
    after = f"{ids['mix.s1_general']['finish']}:{ids['tokenizer']['job']}"
    assert args_of(log, ids["pretrain.s1_general"]["job"]).endswith(f"--dependency=afterok:{after}")
    script = normalise((log / ids["pretrain.s1_general"]["job"]).read_text(), run)
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --exclusive", "export QWEN3_RECIPE_NNODES=4 QWEN3_RECIPE_NPROC=8",
                 "--only pretrain.s1_general --in-allocation"):
        assert line in script, script
    golden = REPO / "tests/golden/slurm/tiny-pretrain.txt"
    if update_golden:
        golden.write_text(script)
    assert golden.read_text() == script

    # inside the allocation the runner's torchrun command spans the nodes
    from qwen3_recipe.train.launch import torchrun_command
    os.environ.update(QWEN3_RECIPE_NNODES="4", QWEN3_RECIPE_NPROC="8", QWEN3_RECIPE_HEAD="node001", SLURM_JOB_ID="77")
    try:
        cmd = torchrun_command({})
    finally:
        for k in ("QWEN3_RECIPE_NNODES", "QWEN3_RECIPE_NPROC", "QWEN3_RECIPE_HEAD", "SLURM_JOB_ID"):
            os.environ.pop(k)
    assert cmd[:4] == ["srun", "--nodes=4", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert {"--nnodes=4", "--nproc_per_node=8", "--rdzv_endpoint=node001:29500", "--rdzv_id=77"} <= set(cmd)


def test_a_served_generation_job_is_requests_then_an_array_then_the_job(tmp_path, cluster, update_golden):
    """A synth job served by vLLM servers: its requests written once, an array of serving.tasks tasks
    with gpus_per_task GPUs each whose servers get the declared tp/dp, then the job itself (golden
    scripts). In-process serving is one job with its GPUs."""
    env, log = cluster
    run = tmp_path / "run"
    serving = "{type: vllm, tasks: 4, tp: 4, dp: 2, max_concurrent: 128, extra_args: {max-num-batched-tokens: 8192}}"
    proc = run_cli("run", "recipes/tiny.yaml", "-o", str(run), "--only", "synth.cot_coldstart", "--executor", "slurm",
                   "--set", f"synth.jobs.cot_coldstart.serving={serving}", "--set", "execution.slurm.gpus_per_node=8",
                   "--set", "execution.slurm.partition=gpu", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = submitted(run)["synth.cot_coldstart"]
    assert list(ids) == ["requests", "serve", "job"]
    assert args_of(log, ids["serve"]).endswith(f"--dependency=afterok:{ids['requests']}")
    assert args_of(log, ids["job"]).endswith(f"--dependency=afterok:{ids['serve']}")
    scripts = {part: normalise((log / i).read_text(), run) for part, i in ids.items()}
    for line in ("#SBATCH --array=0-3", "#SBATCH --nodes=1", "#SBATCH --gpus-per-node=8",
                 "--tensor-parallel-size=4 --data-parallel-size=2 --max-num-seqs=128 --max-num-batched-tokens=8192",
                 "QWEN3_RECIPE_GENERATION=serve", "--only synth.cot_coldstart --in-allocation"):
        assert line in scripts["serve"], scripts["serve"]
    assert "QWEN3_RECIPE_GENERATION=requests" in scripts["requests"] and "--gpus" not in scripts["requests"]
    assert "QWEN3_RECIPE_GENERATION=assemble" in scripts["job"] and "--array" not in scripts["job"]
    text = "\n".join(f"=== {part}\n{script}" for part, script in scripts.items())
    golden = REPO / "tests/golden/slurm/tiny-synth-served.txt"
    if update_golden:
        golden.write_text(text)
    assert golden.read_text() == text
    # in process: one job holding its model copy's GPUs
    proc = run_cli("run", "recipes/tiny.yaml", "-o", str(tmp_path / "inproc"), "--only", "synth.cot_coldstart",
                   "--executor", "slurm", "--set", "synth.jobs.cot_coldstart.serving={tp: 2}", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    one = submitted(tmp_path / "inproc")["synth.cot_coldstart"]
    assert list(one) == ["job"] and "#SBATCH --gpus-per-node=2" in (log / one["job"]).read_text()


def test_a_rerun_submits_only_unfinished_work(tmp_path, cluster):
    env, log = cluster
    run = tmp_path / "run"
    slurm_run(run, env)
    first = submitted(run)
    logs = run / "jobs" / "data.dedup" / "logs" / "exact-1-signatures"
    assert json.loads((logs / "ranks_to_run.json").read_text()) == [0, 1, 2, 3, 4]
    # as if the cluster had run: data.math entirely (done marker), all of data.web's tasks, and two
    # of the five tasks of exact dedup's signatures
    fingerprint = json.loads((run / "jobs/data.math/submitted.json").read_text())["fingerprint"]
    (run / "jobs/data.math/done.json").write_text(json.dumps({"fingerprint": fingerprint}))
    for folder, ranks in ((run / "jobs/data.web/logs", [0]), (logs, [0, 2])):
        (folder / "completions").mkdir(parents=True)
        for rank in ranks:
            (folder / "completions" / f"{rank:05d}").touch()
    for f in (run / "jobs").glob("*/submitted.json"):
        f.unlink()
    before = len(list(log.iterdir()))
    slurm_run(run, env)
    again = submitted(run)
    assert "data.math" not in again  # done: nothing submitted
    assert list(again["data.web"]) == ["finish"]  # no task left to run; the finish step reruns
    assert args_of(log, again["data.web"]["finish"]) == "ARGS: --export=ALL,RUN_OFFSET=0"
    assert args_of(log, again["data.dedup"]["exact-0-inputs"]).endswith(
        f"afterok:{again['data.web']['finish']}:{again['data.code']['finish']}:{again['data.worked']['finish']}:"
        f"{again['data.cot']['finish']}")
    assert json.loads((logs / "ranks_to_run.json").read_text()) == [1, 3, 4]  # only the unfinished tasks
    assert "#SBATCH --array=0-2%2" in (log / again["data.dedup"]["exact-1-signatures"]).read_text()
    assert len(list(log.iterdir())) - before == sum(map(len, first.values())) - 3  # math (2) and web's pipeline


def kept_ids(run: Path) -> set[str]:
    ids = set()
    for f in (run / "jobs/data.dedup/output").glob("*.jsonl.gz"):
        with gzip.open(f, "rt") as fh:
            ids |= {json.loads(line)["id"] for line in fh}
    return ids


def provenance(run: Path) -> dict[str, list]:
    with duckdb.connect(str(run / "provenance.duckdb"), read_only=True) as con:
        rows = {}
        for table in ("documents", "decisions", "contamination", "step_counts", "clusters", "mixture",
                      "mixture_targets"):
            columns = ", ".join(f'"{c[0]}"' for c in con.sql(f"describe {table}").fetchall() if c[0] != "rank")
            rows[table] = sorted(map(str, con.sql(f"select {columns} from {table}").fetchall()))
        return rows


STAGE = """
  mixtures:
    all: {weights: {web: 1.0}, max_repetition: 2}
pretrain:
  batch_tokens: 2K
  stages:
    s1: {tokens: 20K, seq_len: 256, mixture: all}
"""


@pytest.mark.slow
def test_slurm_run_matches_local(tmp_path, cluster):
    env, log = cluster
    root = tmp_path / "proj"
    recipe, _ = write_project(root, files=3, extra_data=STAGE)
    recipe.write_text(recipe.read_text().replace("dedup: {exact: {enabled: false}, minhash: {enabled: false}}",
                                                 "dedup: {minhash: {num_buckets: 4}}"))
    rng = random.Random(3)
    for i in range(3):  # near-duplicates across files (tasks), for MinHash to cluster
        text = prose(rng, 16)
        words = text.split(" ")
        picks = set(rng.sample(range(len(words)), 3))
        near = " ".join("changed" if k in picks else w for k, w in enumerate(words))
        for n, (doc_id, body) in enumerate(((f"orig-{i}", text), (f"near-{i}", near))):
            with open(root / f"datasets_spec/web/web-{n:05d}.jsonl", "a") as fh:
                fh.write(json.dumps({"id": doc_id, "text": body}) + "\n")
    (tmp_path / "job-output").mkdir()
    env = env | {"SBATCH_RUN": str(tmp_path / "job-output")}
    runs = {executor: root / f"run-{executor}" for executor in ("local", "slurm")}
    for executor, run in runs.items():
        proc = run_cli("run", str(recipe), "-o", str(run), "--only", "data", "--executor", executor, cwd=root, env=env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sorted(p.name for p in runs["slurm"].glob("jobs/*/done.json")) == ["done.json"] * 4
    assert kept_ids(runs["local"]) == kept_ids(runs["slurm"]) and kept_ids(runs["local"])
    rows = provenance(runs["slurm"])
    assert rows == provenance(runs["local"]) and rows["decisions"] and rows["clusters"] and rows["mixture"]
    tokens = sorted(runs["local"].glob("jobs/mix.s1/tokens/*.ds"))
    assert tokens and all(t.read_bytes() == (runs["slurm"] / t.relative_to(runs["local"])).read_bytes()
                          for t in tokens)
    count = len(list(log.iterdir()))
    proc = run_cli("run", str(recipe), "-o", str(runs["slurm"]), "--only", "data", "--executor", "slurm",
                   cwd=root, env=env)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout and len(list(log.iterdir())) == count


def test_the_small_models_teacher_pass_is_an_array_of_tp8_ep_servers(tmp_path, cluster, update_golden):
    """qwen3-small's off-policy teacher (Qwen3-235B-A22B, MoE) on Slurm: requests, an array of 128
    tasks of one 8-GPU node each whose servers get tp=8, expert parallelism and vLLM's raw top-k
    log-probabilities, then the job (golden scripts)."""
    env, log = cluster
    run = tmp_path / "run"
    job = "posttrain.distill_offpolicy.teacher"
    proc = run_cli("run", "recipes/qwen3-small.yaml", "-o", str(run), "--only", job, "--executor", "slurm",
                   "--set", "execution.slurm.partition=gpu", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = submitted(run)[job]
    assert list(ids) == ["requests", "serve", "job"] and list(submitted(run)) == [job]  # nothing else to submit
    scripts = {part: normalise((log / i).read_text(), run) for part, i in ids.items()}
    for line in ("#SBATCH --array=0-127", "#SBATCH --nodes=1", "#SBATCH --gpus-per-node=8",
                 "--tensor-parallel-size=8 --enable-expert-parallel", "--logprobs-mode=raw_logprobs",
                 "--max-logprobs=20", f"--only {job} --in-allocation"):
        assert line in scripts["serve"], scripts["serve"]
    text = "\n".join(f"=== {part}\n{script}" for part, script in scripts.items())
    golden = REPO / "tests/golden/slurm/qwen3-small-teacher-pass.txt"
    if update_golden:
        golden.write_text(text)
    assert golden.read_text() == text


def test_a_multi_node_grpo_stage_is_one_allocation_of_accelerate_launches(tmp_path, cluster, update_golden):
    """Issue 19: a Qwen3-8B-sized reasoning_rl stage (tests/assets/recipes/grpo-8B.yaml: 4 nodes x 8 GPUs,
    FSDP2, bf16, selective activation checkpointing) is one sbatch job after the tokenizer; inside it the
    runner starts one `accelerate launch` per node through srun (32 processes meeting at the first node, FSDP2
    over decoder layers, sharded checkpoints), and TRL gets whole groups per process (64 prompts x 16 samples /
    32 = 2 groups, in micro-batches of one sequence) and the recipe's precision (golden submission, command
    and GRPO arguments)."""
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.posttrain.trl_launch import worker_command
    from qwen3_recipe.posttrain.trl_lowering import grpo_args
    from qwen3_recipe.recipe.validate import load_recipe
    env, log = cluster
    run, job = tmp_path / "run", "posttrain.reasoning_rl"
    recipe = "tests/assets/recipes/grpo-8B.yaml"
    proc = run_cli("run", recipe, "-o", str(run), "--only", job, "--executor", "slurm", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = submitted(run)
    assert list(ids) == ["tokenizer", job]  # posttrain.init: no pretraining before it
    script = normalise((log / ids[job]["job"]).read_text(), run)
    for line in ("#SBATCH --nodes=4", "#SBATCH --gpus-per-node=8", "#SBATCH --exclusive",
                 "export QWEN3_RECIPE_NNODES=4 QWEN3_RECIPE_NPROC=8", f"--only {job} --in-allocation"):
        assert line in script, script
    assert args_of(log, ids[job]["job"]).endswith(f"--dependency=afterok:{ids['tokenizer']['job']}")

    lowered = json.loads((run / "jobs" / job / "lowered.json").read_text())["lowered"]
    execution = make_plan(load_recipe(REPO / recipe, []), run).loaded.recipe.execution.model_dump(mode="json")
    inside = {"QWEN3_RECIPE_NNODES": "4", "QWEN3_RECIPE_NPROC": "8", "QWEN3_RECIPE_HEAD": "node001"}
    cmd = worker_command(run / "jobs" / job / "trl_spec.json", execution, "qwen3", env=inside)
    assert cmd[:5] == ["srun", "--nodes=4", "--ntasks-per-node=1", "--kill-on-bad-exit=1", "bash"]
    assert "--multi_gpu" not in cmd[-1]  # accelerate takes FSDP or DDP, not both
    for part in ("--num_processes 32 --num_machines 4", "--machine_rank $SLURM_NODEID --main_process_ip node001",
                 "--use_fsdp --fsdp_version 2", "--fsdp_transformer_layer_cls_to_wrap Qwen3DecoderLayer",
                 "--mixed_precision bf16", "-m qwen3_recipe.posttrain.trl_worker"):
        assert part in cmd[-1], cmd[-1]
    args = grpo_args(lowered, run / "jobs" / job, execution, processes=32)
    # each process's 32 samples (2 groups) one 32K-token sequence at a time, accumulated into one step
    assert args["per_device_train_batch_size"] == 1 and args["num_generations"] == 16
    assert args["gradient_accumulation_steps"] == args["steps_per_generation"] == 32
    assert args["bf16"] and args["gradient_checkpointing"] and args["max_completion_length"] == 32000
    text = "\n".join([script, "=== inside the allocation", normalise(" ".join(cmd), run),
                      "=== GRPOConfig", json.dumps({k: args[k] for k in sorted(args) if k != "output_dir"}, indent=1)])
    # `plan` says where it runs: 32 GPUs shared by trainer and rollouts, GPU-hours split between them
    view = json.loads(run_cli("plan", recipe, "--set", "execution.executor=slurm", "--format", "json").stdout)
    planned = next(j for j in view["jobs"] if j["name"] == job)
    t = planned["trainer"]
    assert t["gpus"] == 32 and t["rollout_gpus"] == 0 and "FSDP2" in t["text"]
    assert abs(t["rollout_gpu_hours"] + t["update_gpu_hours"] - planned["estimate"]["gpu_hours"]) < 1e-6
    golden = REPO / "tests/golden/slurm/grpo-8B-reasoning-rl.txt"
    if update_golden:
        golden.write_text(text + "\n")
    assert golden.read_text() == text + "\n"


def test_a_grpo_stage_with_rollout_servers_gets_nodes_of_their_own(tmp_path, cluster, update_golden):
    """Issue 19: the same stage with `execution.rollout.servers: 8` (one GPU each) asks for one node more; inside
    the allocation the runner starts the servers with one srun on the nodes after the trainers' (one task per
    server, its GPU, its URL file), and the trainers' srun keeps to the first four (golden submission and
    commands); `plan` counts the rollout GPUs apart from the trainer's."""
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.launch.rollout_servers import server_commands
    from qwen3_recipe.posttrain.trl_launch import worker_command
    from qwen3_recipe.recipe.validate import load_recipe
    env, log = cluster
    run, job, servers = tmp_path / "run", "posttrain.reasoning_rl", ["--set", "execution.rollout.servers=8"]
    recipe = "tests/assets/recipes/grpo-8B.yaml"
    proc = run_cli("run", recipe, "-o", str(run), "--only", job, "--executor", "slurm", *servers, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = submitted(run)
    script = normalise((log / ids[job]["job"]).read_text(), run)
    for line in ("#SBATCH --nodes=5", "#SBATCH --gpus-per-node=8",
                 "export QWEN3_RECIPE_NNODES=4 QWEN3_RECIPE_NPROC=8 QWEN3_RECIPE_ROLLOUT_NODES=1"):
        assert line in script, script
    inside = {"QWEN3_RECIPE_NNODES": "4", "QWEN3_RECIPE_NPROC": "8", "QWEN3_RECIPE_HEAD": "node001",
              "QWEN3_RECIPE_ROLLOUT_NODES": "1", "SLURM_CPUS_PER_TASK": "32"}
    folder = run / "jobs" / job
    [(serve, _)] = server_commands(folder / "rollout", Path("/checkpoints/qwen3-8B-cold-start"), 32000, None, 8, 1,
                                   inside)
    assert serve[:6] == ["srun", "--nodes=1", "--relative=4", "--ntasks-per-node=1", "--cpus-per-task=32",
                         "--kill-on-bad-exit=1"]
    assert "--index $n" in serve[-1] and '"$(hostname)"' in serve[-1]
    # what each node's task starts: its servers, one GPU each, numbered on from the node's first
    for n, (cuda, url) in enumerate(_server_starts(serve[-1], procid=0)):
        assert (cuda, url) == (str(n), f"server-{n}.url")
    [(wide, _)] = server_commands(folder / "rollout", Path("/m"), 10, None, 6, 2, inside | {
        "QWEN3_RECIPE_ROLLOUT_NODES": "2"})  # 6 servers of 2 GPUs on 2 nodes: 3 per node, GPUs 0-1, 2-3, 4-5
    assert [_server_starts(wide[-1], node) for node in (0, 1)] == [
        [("0,1", "server-0.url"), ("2,3", "server-1.url"), ("4,5", "server-2.url")],
        [("0,1", "server-3.url"), ("2,3", "server-4.url"), ("4,5", "server-5.url")]]
    execution = make_plan(load_recipe(REPO / recipe, servers[1:]), run).loaded.recipe.execution.model_dump(mode="json")
    train = worker_command(folder / "trl_spec.json", execution, "qwen3", env=inside)
    assert train[:5] == ["srun", "--nodes=4", "--relative=0", "--ntasks-per-node=1", "--cpus-per-task=32"]
    view = json.loads(run_cli("plan", recipe, "--set", "execution.executor=slurm", *servers,
                              "--format", "json").stdout)
    t = next(j for j in view["jobs"] if j["name"] == job)["trainer"]
    assert t["gpus"] == 32 and t["rollout_gpus"] == 8 and "rollouts on 8 servers of 1 GPU (1 more node(s))" in t["text"]
    text = "\n".join([script, "=== inside the allocation: rollout servers", normalise(" ".join(serve), run),
                      "=== trainers", normalise(" ".join(train), run)])
    golden = REPO / "tests/golden/slurm/grpo-8B-rollout-servers.txt"
    if update_golden:
        golden.write_text(text + "\n")
    assert golden.read_text() == text + "\n"


def _server_starts(inner: str, procid: int) -> list[tuple[str, str]]:
    """(CUDA_VISIBLE_DEVICES, URL file) of each server the srun task of `procid` starts, by running its loop
    with the server command replaced by an echo."""
    import re
    import subprocess
    probe = re.sub(r"\S+ -m qwen3_recipe\.posttrain\.rollout_server .*? --index \$n --host \"\$\(hostname\)\" &",
                   r"""sh -c 'echo "$CUDA_VISIBLE_DEVICES server-$0.url"' $n &""", inner)
    assert probe != inner, inner
    out = subprocess.run(["bash", "-c", probe.replace("wait -n; exit 1", "wait")], env={"SLURM_PROCID": str(procid),
                         "PATH": os.environ["PATH"]}, capture_output=True, text=True, check=True).stdout
    starts = [tuple(line.split()) for line in out.splitlines()]
    return sorted(starts, key=lambda t: int(t[1].split("-")[1].split(".")[0]))
