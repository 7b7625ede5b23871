"""datatrove's output during data jobs: each task's full log in jobs/<job>/logs/..., its warnings on
stderr (which a running job points at its job.log, job_log.py: the terminal keeps our progress
display; `--verbose` shows them too). Shared by every data job runner and the Slurm lowering;
imports no other module of ours."""

from __future__ import annotations

import os
import sys


def quiet_task_logs() -> None:
    """datatrove logs every task at INFO to stderr and re-adds an INFO sink after each task. Keep
    the full log in each task's log file (jobs/<job>/logs/...) and only warnings on stderr (the
    job's log, where they sit beside the other engines' start-up lines). Applied when
    qwen3_recipe.data is imported, so worker processes (which import it to unpickle our executors
    and steps) behave the same."""
    import importlib

    from datatrove.utils import logging as dt_logging

    if getattr(dt_logging.add_task_logger, "_qwen3_recipe", False):
        return
    logger = dt_logging.logger
    file_format = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"

    def warnings_only(record) -> bool:
        # a task's error and traceback stay in its log: the job's failure is one line of ours; an
        # inference server's start-up polls ("Attempt 12: Please wait ...") are progress, not warnings
        return (record["level"].no < 40 and record["exception"] is None
                and "server to become ready" not in record["message"])

    def setup_default_logger() -> None:  # outside tasks: no task log to keep errors, so they stay here
        logger.remove()
        logger.add(sys.stderr, level="WARNING", format="{level}: {message}",
                   filter=lambda record: record["exception"] is None)

    def add_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
        logger.remove()
        logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
        logger.add(logfile, level="DEBUG", format=file_format)
        if local_rank == 0:  # one worker's warnings on stderr, not every worker's
            logger.add(sys.stderr, level="WARNING", format="{level}: {message}", filter=warnings_only)
        logger.info(f"Launching pipeline for {rank=}")
        return logfile

    add_task_logger._qwen3_recipe = True
    dt_logging.setup_default_logger = setup_default_logger  # what close_task_logger calls
    for name in ("datatrove.utils.logging", "datatrove.executor.base", "datatrove.executor.jobs",
                 "datatrove.executor.ray"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # ray is optional
            continue
        if hasattr(module, "add_task_logger"):
            module.add_task_logger = add_task_logger
    setup_default_logger()


def quiet_datatrove() -> None:
    """Output of data jobs: datatrove's warnings on stderr, no tqdm bars (the task logs in
    jobs/<job>/logs keep everything)."""
    quiet_task_logs()  # already applied on import of qwen3_recipe.data; idempotent
    os.environ.setdefault("TQDM_DISABLE", "1")
