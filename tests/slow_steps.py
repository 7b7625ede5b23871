"""A datatrove filter that keeps everything but takes its time: makes kill-and-resume tests deterministic."""

import time

from datatrove.pipeline.filters.base_filter import BaseFilter


class SlowKeep(BaseFilter):
    name = "slow keep"

    def __init__(self, seconds: float = 0.5) -> None:
        super().__init__()
        self.seconds = seconds

    def filter(self, doc) -> bool:
        time.sleep(self.seconds)
        return True
