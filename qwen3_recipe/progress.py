"""Progress bars of the long-running jobs (training steps, generated samples), on the shared
console. Like qwen3_recipe/console.py: only rich and the stdlib."""

from __future__ import annotations

from qwen3_recipe.console import console

# rich's live display would take over sys.stdout and sys.stderr and show what engines print on the
# terminal; while a job runs they belong in its log (job_log.py)
UNREDIRECTED = {"redirect_stdout": False, "redirect_stderr": False}


def training_progress(name: str, steps: int):
    """A progress bar over a training job's steps; the context value takes new metric rows."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    @contextmanager
    def bar():
        columns = (TextColumn("[cyan]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[loss]}"), TimeRemainingColumn())
        with Progress(*columns, console=console(), transient=False, **UNREDIRECTED) as progress:
            task = progress.add_task(name, total=steps, loss="")

            def update(rows: list[dict]) -> None:
                last = rows[-1]
                loss = last.get("loss_metrics/global_avg_loss", last.get("loss"))
                text = f"loss {loss:.3f}" if loss is not None else ""
                for key in ("reward_mean", "kl"):  # RL and distillation steps
                    if last.get(key) is not None:
                        text += f"  {key.split('_')[0]} {last[key]:.3f}"
                progress.update(task, completed=last["step"], loss=text)
            yield update
    return bar()


def synth_progress(name: str, total: int, done: int = 0, kept: int | None = None):
    """Samples generated (of total), samples/s and generated tokens/s (of this run, not the cached)
    and, when `kept` is given, the acceptance so far (kept / judged samples); the context value takes
    counts of new samples, of those kept, and of their tokens."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    @contextmanager
    def bar():
        import time
        start, first = time.monotonic(), done
        counts = {"done": done, "kept": kept}
        columns = (TextColumn("[cyan]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[accepted]}"), TimeRemainingColumn())
        with Progress(*columns, console=console(), **UNREDIRECTED) as progress:
            task = progress.add_task(name, total=total, completed=done, rate="",
                                     accepted=acceptance_text(done, kept))

            def update(n: int, n_kept: int = 0, tokens: int = 0) -> None:
                counts["done"] += n
                counts["tokens"] = counts.get("tokens", 0) + tokens
                if counts["kept"] is not None:
                    counts["kept"] += n_kept
                elapsed = max(time.monotonic() - start, 1e-6)
                rate = f"{(counts['done'] - first) / elapsed:.1f} samples/s"
                if counts["tokens"]:
                    rate += f", {counts['tokens'] / elapsed:,.0f} tokens/s"
                progress.update(task, advance=n, rate=rate, accepted=acceptance_text(counts["done"], counts["kept"]))
            yield update
    return bar()


def acceptance_text(judged: int, kept: int | None) -> str:
    if kept is None:
        return ""
    return f"accepted {kept:,}/{judged:,}" + (f" ({kept / judged:.0%})" if judged else "")


def spinner(text: str):
    """A spinner while work without a count runs (a datatrove pipeline stage); nothing when the
    output is not a terminal."""
    from contextlib import contextmanager, nullcontext

    from rich.progress import Progress, SpinnerColumn, TextColumn

    con = console()
    if not con.is_terminal:
        return nullcontext()

    @contextmanager
    def spin():
        with Progress(SpinnerColumn(), TextColumn(text), console=con, transient=True, **UNREDIRECTED) as progress:
            progress.add_task("", total=None)
            yield
    return spin()
