"""SIGTERM / SIGINT during training: the first one asks for a graceful stop, a second one aborts.

    with stop_on_signals(trainer.request_stop):
        trainer.fit()

The first signal calls ``request_stop(signum)``: the trainer finishes the
current step, saves a checkpoint and raises TrainingInterrupted (exit code
128 + signum). A second signal raises KeyboardInterrupt at once (an abort; the
last checkpoint on disk stays intact because checkpoint writes are atomic).
The previous handlers are restored on exit.
"""
import contextlib
import os
import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(request_stop, signals=SIGNALS):
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield
        return
    received = []

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt(f"second signal {signum}: aborted")
        received.append(signum)
        # os.write, not print/logging: those are not safe to re-enter from a handler
        os.write(2, f"signal {signum}: stopping after the current step and saving a checkpoint "
                    f"(send it again to abort at once)\n".encode())
        request_stop(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
