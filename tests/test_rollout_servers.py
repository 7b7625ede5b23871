"""Issue 19: where rollout servers go (launch/rollout_servers.py) and what the plan and the recipe checks say of
them. Fast: the GPU split runs against a faked device count (this machine has none); the server itself is driven
for real in tests/test_trl_served.py."""

from __future__ import annotations

import json

import pytest
from conftest import REPO, run_cli

RECIPE = "tests/assets/recipes/grpo-8B.yaml"


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has n GPUs."""
    from qwen3_recipe.train import launch

    def have(n: int) -> None:
        monkeypatch.setattr(launch, "has_accelerator", lambda: n > 0)
        monkeypatch.setattr(launch, "local_devices", lambda: n)
    return have


def test_servers_take_the_last_gpus_the_environment_shows(gpus) -> None:
    from qwen3_recipe.launch.rollout_servers import local_gpu_split, server_commands
    gpus(8)
    assert local_gpu_split({}, 2, 2) == (["0", "1", "2", "3"], [["4", "5"], ["6", "7"]])
    # a preset CUDA_VISIBLE_DEVICES is what the stage may use: its last GPUs go to the servers
    assert local_gpu_split({"CUDA_VISIBLE_DEVICES": "3,5,6"}, 1, 1) == (["3", "5"], [["6"]])
    assert local_gpu_split({"CUDA_VISIBLE_DEVICES": "3"}, 1, 1) == ([], [["3"]])
    commands = server_commands(REPO / "x", REPO / "m", 16, None, 2, 1, {"CUDA_VISIBLE_DEVICES": "2,4,7"})
    assert [e["CUDA_VISIBLE_DEVICES"] for _, e in commands] == ["4", "7"]
    assert [c[c.index("--index") + 1] for c, _ in commands] == ["0", "1"]
    gpus(0)  # CPU: no carving at all
    assert local_gpu_split({"CUDA_VISIBLE_DEVICES": ""}, 2, 1) == ([], [[], []])
    assert all("CUDA_VISIBLE_DEVICES" not in e for _, e in server_commands(REPO, REPO, 16, None, 2, 1, {}))


def test_inside_an_allocation_without_server_nodes_is_a_clear_error() -> None:
    from qwen3_recipe.launch.rollout_servers import server_commands
    with pytest.raises(RuntimeError, match="QWEN3_RECIPE_ROLLOUT_NODES"):
        server_commands(REPO, REPO, 16, None, 2, 1, {"QWEN3_RECIPE_HEAD": "node001"})


def test_a_server_wider_than_a_node_is_refused_at_its_key() -> None:
    proc = run_cli("plan", RECIPE, "--set", "execution.executor=slurm", "--set", "execution.rollout.servers=2",
                   "--set", "execution.rollout.gpus_per_server=16")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert "execution.rollout.gpus_per_server" in out and "does not fit on a node of 8" in out, out


def test_the_plan_holds_whole_server_nodes_on_slurm() -> None:
    """3 servers of 2 GPUs use 6 GPUs of the one node they take; the node is held whole (sbatch --exclusive)."""
    sets = ["--set", "execution.executor=slurm", "--set", "execution.rollout.servers=3",
            "--set", "execution.rollout.gpus_per_server=2"]
    view = json.loads(run_cli("plan", RECIPE, *sets, "--format", "json").stdout)
    t = next(j for j in view["jobs"] if j["name"] == "posttrain.reasoning_rl")["trainer"]
    assert (t["gpus"], t["rollout_gpus"], t["rollout_gpus_held"]) == (32, 6, 8)
    assert "rollouts on 3 servers of 2 GPUs (1 more node(s))" in t["text"]
    wall = t["rollout_gpu_hours"] / 6 + t["update_gpu_hours"] / 32
    from qwen3_recipe.cli.render import hours_text
    text = " ".join(run_cli("plan", RECIPE, *sets, env={"COLUMNS": "400"}).stdout.split())
    assert f"(both held: {hours_text(wall * (32 + 8))} GPU-h)" in text, text


def test_the_trainers_keep_the_gpus_the_servers_leave(gpus, monkeypatch, tmp_path) -> None:
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.errors import RecipeError
    from qwen3_recipe.launch.rollout_servers import server_commands
    from qwen3_recipe.posttrain.trl_stage import trainer_env
    from qwen3_recipe.recipe.validate import load_recipe
    plan = make_plan(load_recipe(REPO / RECIPE, ["execution.rollout.servers=2",
                                                 "execution.rollout.gpus_per_server=2"]), tmp_path)
    rollout = plan.loaded.recipe.execution.rollout.model_dump()
    for var in ("QWEN3_RECIPE_HEAD", "QWEN3_RECIPE_NPROC", "QWEN3_RECIPE_ROLLOUT_ENGINE"):
        monkeypatch.delenv(var, raising=False)
    gpus(8)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,2,3,4,5,6")
    env, gpus = trainer_env(rollout, plan)
    assert (env["CUDA_VISIBLE_DEVICES"], env["QWEN3_RECIPE_NPROC"], gpus) == ("1,2", "2", [["3", "4"], ["5", "6"]])
    # what starts the servers (launch/rollout_servers.start) puts them on those GPUs, none of the trainers'
    commands = server_commands(tmp_path, tmp_path, 16, None, 2, 2, env, gpus)
    assert [e["CUDA_VISIBLE_DEVICES"] for _, e in commands] == ["3,4", "5,6"]
    monkeypatch.setenv("QWEN3_RECIPE_NPROC", "3")  # more trainer processes than GPUs left to them
    with pytest.raises(RecipeError, match="leave 2 of the 6 GPUs this machine shows for the 3 trainer"):
        trainer_env(rollout, plan)
    monkeypatch.setenv("QWEN3_RECIPE_ROLLOUT_ENGINE", "transformers")  # tensor parallelism is vLLM's
    with pytest.raises(RecipeError, match="transformers rollout server runs on one GPU") as refused:
        trainer_env(rollout, plan)
    assert refused.value.problems[0].path == "execution.rollout.gpus_per_server"


def test_colocated_vllm_engines_get_a_gpu_each(gpus, monkeypatch, tmp_path) -> None:
    """Without servers each process's vLLM engine keeps its own GPU: more processes than GPUs is refused (accelerate
    alone would put two on one); with servers, the processes the stage checks are those the servers leave."""
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.errors import RecipeError
    from qwen3_recipe.posttrain.trl_stage import refuse_sharded_heldout, trainer_env
    from qwen3_recipe.recipe.validate import load_recipe
    for var in ("QWEN3_RECIPE_HEAD", "QWEN3_RECIPE_ROLLOUT_ENGINE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    plan = make_plan(load_recipe(REPO / RECIPE, ["execution.fsdp=full"]), tmp_path)
    rollout = plan.loaded.recipe.execution.rollout.model_dump()
    gpus(2)
    monkeypatch.setenv("QWEN3_RECIPE_NPROC", "4")
    with pytest.raises(RecipeError, match="4 trainer processes with a vLLM engine each on 2 GPU") as refused:
        trainer_env(rollout, plan)
    assert refused.value.problems[0].path == "execution.rollout.servers"
    monkeypatch.setenv("QWEN3_RECIPE_ROLLOUT_ENGINE", "transformers")  # no engine holding a GPU: accelerate shares
    assert trainer_env(rollout, plan)[0]["QWEN3_RECIPE_NPROC"] == "4"
    monkeypatch.delenv("QWEN3_RECIPE_NPROC")
    job = next(p for p in plan.jobs if p.job.kind == "reasoning_rl")
    with pytest.raises(RecipeError, match="does not run sharded"):  # two processes, one per GPU
        refuse_sharded_heldout(job, plan)
    served = make_plan(load_recipe(REPO / RECIPE, ["execution.fsdp=full", "execution.rollout.servers=1"]), tmp_path)
    refuse_sharded_heldout(job, served)  # one GPU is the server's: the trainer is one process


def test_servers_on_ray_are_refused_at_their_key() -> None:
    proc = run_cli("plan", RECIPE, "--set", "execution.executor=ray", "--set", "execution.rollout.servers=2")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert "execution.rollout.servers" in out and "not on Ray yet" in out, out


def test_on_ray_the_stage_runs_as_ray_train_workers(tmp_path) -> None:
    from qwen3_recipe.posttrain.trl_launch import RAY_DRIVER, worker_command
    for env in ({"QWEN3_RECIPE_NPROC": "1"}, {"QWEN3_RECIPE_NPROC": "4"}):  # one worker too: on the cluster
        assert worker_command(tmp_path / "spec.json", {"executor": "ray"}, env=env)[1:] == [
            "-m", RAY_DRIVER, str(tmp_path / "spec.json")]


def test_the_recipe_sets_the_ray_train_workers(tmp_path) -> None:
    from qwen3_recipe.compiler.plan import make_plan
    from qwen3_recipe.posttrain.trl_launch import processes
    from qwen3_recipe.posttrain.trl_stage import stage_env
    from qwen3_recipe.recipe.validate import load_recipe
    sets = ["--set", "execution.executor=ray", "--set", "execution.ray.workers=4"]
    view = json.loads(run_cli("plan", RECIPE, *sets, "--format", "json").stdout)
    t = next(j for j in view["jobs"] if j["name"] == "posttrain.reasoning_rl")["trainer"]
    assert t["gpus"] == 4 and "4 processes (1 node x 4)" in t["text"]
    plan = make_plan(load_recipe(REPO / RECIPE, [s for s in sets if s != "--set"]), tmp_path)
    assert processes(stage_env(plan))[:2] == (1, 4)


def test_each_process_with_a_colocated_vllm_keeps_its_own_gpu() -> None:
    """vLLM's in-process engine takes the first GPU a process sees, whatever its rank: under a launcher of several
    processes per machine each keeps only its own."""
    from qwen3_recipe.posttrain.trl_worker import colocated_vllm, keep_own_gpu
    cases = [({"LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4"}, "2"),
             ({"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "CUDA_VISIBLE_DEVICES": "4,6"}, "6"),
             ({"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "CUDA_VISIBLE_DEVICES": ""}, ""),  # CPU processes
             ({"LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "CUDA_VISIBLE_DEVICES": "3,5"}, "3,5")]  # one: all
    for env, kept in cases:
        keep_own_gpu(env)
        assert env.get("CUDA_VISIBLE_DEVICES", "") == kept, env
    with pytest.raises(SystemExit, match="process 2 of 3 on this machine has no GPU of its own"):
        keep_own_gpu({"LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "3", "CUDA_VISIBLE_DEVICES": "0,1"})
    assert colocated_vllm({"engine": None}) and not colocated_vllm({"engine": "transformers"})
    assert not colocated_vllm({"engine": "vllm", "rollout_servers": ["http://h:1"]})
