"""Progress reporting for long work: a tqdm bar on a terminal (the CLI), log lines otherwise.

Log lines (the gate's live log) name the work, the epoch, the step and an
estimate of the time left, computed from the steps done so far; inside a long
epoch a line is written every :data:`LOG_EVERY_S` seconds.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("compress")

_bars = False
LOG_EVERY_S = 30.0


def eta(elapsed_s: float, done: int, total: int) -> str:
    """``"~2 min 05 s left"`` at the pace so far (``done`` of ``total`` steps in ``elapsed_s``).

    >>> eta(10.0, 1, 4)
    '~30 s left'
    >>> eta(10.0, 0, 4)
    'time left unknown'
    """
    if done <= 0:
        return "time left unknown"
    left = elapsed_s / done * max(total - done, 0)
    return f"~{int(left // 60)} min {int(left % 60):02d} s left" if left >= 60 else f"~{left:.0f} s left"


class _Pace:
    """Steps done against the total, and when the last log line was written."""

    def __init__(self, label: str, epochs: int, steps_per_epoch: int):
        self.label, self.epochs, self.steps_per_epoch = label, epochs, steps_per_epoch
        self.total = epochs * steps_per_epoch
        self.done = 0
        self.t0 = self.last = time.perf_counter()

    def step(self, epoch: int, loss: float | None = None) -> None:
        self.done += 1
        now = time.perf_counter()
        if now - self.last >= LOG_EVERY_S:
            self.last = now
            in_epoch = self.done - epoch * self.steps_per_epoch
            msg = f" loss={loss:.4f}" if loss is not None else ""
            log.info("%s: epoch %d/%d, step %d/%d%s (%.0f s, %s)", self.label, epoch + 1, self.epochs,
                     in_epoch, self.steps_per_epoch, msg, now - self.t0, self.eta())  # fmt: skip

    def end_epoch(self, epoch: int, msg: str) -> None:
        self.done = max(self.done, (epoch + 1) * self.steps_per_epoch)
        self.last = time.perf_counter()
        log.info("%s: epoch %d/%d %s (%.0f s, %s)", self.label, epoch + 1, self.epochs, msg,
                 self.last - self.t0, self.eta())  # fmt: skip

    def eta(self) -> str:
        return "done" if self.done >= self.total else eta(time.perf_counter() - self.t0, self.done, self.total)


def use_bars(enabled: bool) -> None:
    """Show tqdm progress bars (the CLI turns them on); otherwise log one line per epoch."""
    global _bars
    _bars = enabled


def keras_callback(label: str, epochs: int, steps_per_epoch: int):
    """A Keras callback reporting epoch, step and loss for ``label``."""
    from compress.frameworks import tensorflow

    keras = tensorflow().keras

    class _Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.pace = _Pace(label, epochs, steps_per_epoch)
            self.bar = None
            if _bars:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=epochs * steps_per_epoch, desc=label, unit="step", leave=True)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is None:
                self.pace.step(self.epoch, (logs or {}).get("loss"))
            else:
                self.bar.update(1)
                if batch % 10 == 0:
                    self.bar.set_postfix(epoch=f"{self.epoch + 1}/{epochs}", loss=f"{logs.get('loss', 0):.4f}")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            msg = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if isinstance(v, float))
            if self.bar is None:
                self.pace.end_epoch(epoch, msg)

        def on_train_end(self, logs=None):
            if self.bar is not None:
                self.bar.close()

    return _Progress()


class StepProgress:
    """Progress of a plain training loop (torch): a bar on a terminal, else a log line per epoch.

    Example:
        >>> p = StepProgress("train resnet18", epochs=2, steps_per_epoch=100)  # doctest: +SKIP
        >>> p.step(epoch=0, loss=0.5); p.end_epoch(0, loss=0.4)  # doctest: +SKIP
    """

    def __init__(self, label: str, epochs: int, steps_per_epoch: int):
        self.label, self.epochs = label, epochs
        self.pace = _Pace(label, epochs, steps_per_epoch)
        self.bar = None
        if _bars:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs * steps_per_epoch, desc=label, unit="step", leave=True)

    def step(self, epoch: int, loss: float) -> None:
        if self.bar is None:
            self.pace.step(epoch, loss)
        else:
            self.bar.update(1)
            self.bar.set_postfix(epoch=f"{epoch + 1}/{self.epochs}", loss=f"{loss:.4f}", refresh=False)

    def end_epoch(self, epoch: int, **metrics: float) -> None:
        if self.bar is None:
            self.pace.end_epoch(epoch, " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
