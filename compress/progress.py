"""Progress reporting for long work: a tqdm bar on a terminal (the CLI), log lines otherwise."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("compress")

_bars = False


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
            self.t0 = time.perf_counter()
            self.bar = None
            if _bars:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=epochs * steps_per_epoch, desc=label, unit="step", leave=True)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.bar is not None:
                self.bar.update(1)
                if batch % 10 == 0:
                    self.bar.set_postfix(epoch=f"{self.epoch + 1}/{epochs}", loss=f"{logs.get('loss', 0):.4f}")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            msg = " ".join(f"{k}={v:.4f}" for k, v in logs.items() if isinstance(v, float))
            if self.bar is None:
                log.info("%s: epoch %d/%d %s (%.0f s)", label, epoch + 1, epochs, msg, time.perf_counter() - self.t0)

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
        self.t0 = time.perf_counter()
        self.bar = None
        if _bars:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs * steps_per_epoch, desc=label, unit="step", leave=True)

    def step(self, epoch: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(epoch=f"{epoch + 1}/{self.epochs}", loss=f"{loss:.4f}", refresh=False)

    def end_epoch(self, epoch: int, **metrics: float) -> None:
        if self.bar is None:
            msg = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
            log.info("%s: epoch %d/%d %s (%.0f s)", self.label, epoch + 1, self.epochs, msg,
                     time.perf_counter() - self.t0)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
