"""One rich progress bar for long work (epochs, augmentation, teacher scoring); a no-op when off."""

from __future__ import annotations

from collections.abc import Callable


class ProgressBar:
    """``with ProgressBar(True, "epoch 1/3", n, field="loss") as advance: advance(value)``."""

    def __init__(
        self,
        enabled: bool,
        description: str,
        total: int | None,
        field: str | None = None,
        rate: str | None = None,
    ) -> None:
        """``rate`` names a second number shown after ``field`` (e.g. tokens/s), passed to
        ``advance(value, steps, rate)``. ``total`` None: an open-ended count (stdin)."""
        self.enabled, self.description, self.total, self.field = enabled, description, total, field
        self.rate = rate

    def __enter__(self) -> Callable[..., None]:
        if not self.enabled:
            return lambda *value, **fields: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        if self.field:
            columns.append(TextColumn(f"{self.field} {{task.fields[value]:.4f}}"))
        if self.rate:
            columns.append(TextColumn(f"{{task.fields[rate]:,.0f}} {self.rate}"))
        # on stderr: a bar never mixes with what a command writes to stdout (predictions, JSON)
        self.bar = Progress(*columns, TimeRemainingColumn(), transient=True, console=Console(stderr=True))
        self.bar.start()
        task = self.bar.add_task(self.description, total=self.total, value=0.0, rate=0.0)
        return lambda value=0.0, steps=1, rate=None: self.bar.update(
            task, advance=steps, value=value, **({"rate": rate} if rate is not None else {})
        )

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
