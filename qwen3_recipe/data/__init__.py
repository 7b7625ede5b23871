"""The data engine: recipe data jobs lowered to datatrove pipelines with provenance."""

from __future__ import annotations


def _warnings_only_on_stderr() -> None:
    """datatrove sends every task's INFO log to stderr; keep that in the task's log file and show
    only warnings on the terminal, where our own progress display runs. Applied on import, so
    worker processes (which import this package to unpickle our steps) behave the same."""
    from datatrove.executor import base
    from datatrove.utils import logging as dt_logging

    original = dt_logging.add_task_logger
    if getattr(original, "_qwen3_recipe", False):
        return

    def add_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
        import sys
        logfile = original(logging_dir, rank, local_rank, node_rank)
        dt_logging.logger.remove()
        fmt = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"
        dt_logging.logger.add(logfile, level="DEBUG", format=fmt)
        dt_logging.logger.add(sys.stderr, level="WARNING", format="{level}: {message}")
        return logfile

    add_task_logger._qwen3_recipe = True
    dt_logging.add_task_logger = add_task_logger
    base.add_task_logger = add_task_logger


_warnings_only_on_stderr()
