"""Stopping long work cleanly on SIGINT (Ctrl-C) and SIGTERM.

``StopOnSignal`` is a context manager: while it is active (in the main thread), SIGINT and SIGTERM do not interrupt
the program but set ``received``; the loop that owns it (``simulate``'s chunks, ``fit``'s steps) checks the flag
after each unit of work, saves what it has and raises its own ``KeyboardInterrupt`` subclass with one line saying
what was saved and how to continue. A second SIGINT interrupts at once. Outside the main thread (where Python
cannot install handlers) it does nothing and the signals keep their usual effect.
"""
from __future__ import annotations

import signal
import threading
from typing import Optional


class StopOnSignal:
    """Turns SIGINT/SIGTERM into a request to stop after the current unit of work (see the module docstring)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: Optional[int] = None
        self._saved: dict = {}

    @property
    def name(self) -> Optional[str]:
        """``"SIGINT"`` / ``"SIGTERM"`` once one arrived, else ``None``."""
        return None if self.received is None else signal.Signals(self.received).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._saved[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        return False
