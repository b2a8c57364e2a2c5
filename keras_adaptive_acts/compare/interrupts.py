"""Ctrl-C while activations train: an interrupt that is not lost.

CPython runs a Python signal handler in the main thread between two bytecodes, wherever they are. When
that is inside a callback CPython calls itself (a weak reference's, during garbage collection), the
handler's `KeyboardInterrupt` is printed as "Exception ignored in ..." and dropped, and the training
goes on (a review saw two Ctrl-C in three do nothing else while `kaa compare` trained). So the handler
of `stop_on_interrupt` also records that an interrupt was asked for, and `InterruptCheck`, a Keras
callback, raises `KeyboardInterrupt` again at the next batch once one was, even if the first was
swallowed.

```python
from keras_adaptive_acts import compare

with compare.stop_on_interrupt() as check:
    records = compare.compare_activations(data, ["relu", "gelu"], callbacks=[check])
```
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import keras

__all__ = ["InterruptCheck", "stop_on_interrupt"]


class InterruptCheck(keras.callbacks.Callback):
    """Raises `KeyboardInterrupt` at the next batch (training, validation or prediction) and at the
    start of the next `fit` once `asked` is set, and from `check()`.

    It checks at the beginning of each batch, right after the previous batch ended: a callback with a
    batch-end hook makes Keras run every callback's batch end in step with training and turn the logs
    into Python numbers after each step, which would slow down the steps that `kaa compare` times.
    """

    def __init__(self):
        super().__init__()
        self.asked = False

    def check(self) -> None:
        """Raises `KeyboardInterrupt` if an interrupt was asked for."""
        if self.asked:
            raise KeyboardInterrupt

    def on_train_begin(self, logs=None):
        self.check()

    def on_train_batch_begin(self, batch, logs=None):
        self.check()

    def on_test_batch_begin(self, batch, logs=None):
        self.check()

    def on_predict_batch_begin(self, batch, logs=None):
        self.check()

    def __deepcopy__(self, memo):
        # KerasTuner deep-copies a search's callbacks for each trial's fit: a copy would carry a flag
        # of its own, which the signal handler never sets. Every copy is this check.
        return self


@contextlib.contextmanager
def stop_on_interrupt() -> Iterator[InterruptCheck]:
    """Inside the block, SIGINT (Ctrl-C) sets the yielded check's `asked` and raises `KeyboardInterrupt`.

    The SIGINT handler that was there before is restored on leaving. Where SIGINT is ignored (a
    background job of a shell without job control), where the handler was not set from Python, or off
    the main thread (where Python cannot set one), nothing is changed: the check then raises only if
    `asked` is set by hand.
    """
    check = InterruptCheck()
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None) or threading.current_thread() is not threading.main_thread():
        yield check
        return

    def ask(signal_number, frame):
        check.asked = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, ask)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
