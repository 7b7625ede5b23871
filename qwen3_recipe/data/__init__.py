"""The data engine: recipe data jobs lowered to datatrove pipelines with provenance."""

from qwen3_recipe.data.logs import quiet_task_logs

# On import, so worker processes (which import this package to unpickle our executors and steps)
# log like the parent: warnings on the terminal, the rest in the task logs (data/logs.py).
quiet_task_logs()
