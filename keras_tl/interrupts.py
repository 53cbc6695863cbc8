"""Ctrl-C that stops training even when Python swallows it.

Python raises `KeyboardInterrupt` wherever the main thread is when the
signal arrives. When that is inside a finalizer (the `__del__` of a
traced TensorFlow function freed at an epoch's end, just after the run's
checkpoint), Python prints "Exception ignored in ..." and goes on: the
command trained to its end and exited 0 as if never stopped. Under
`remembered()` a press is also remembered, and `raise_if_pressed()`,
called by the run's checkpoint callback before every batch and after
every epoch, raises it again where it cannot be lost; the lost first raise
is not printed (as "Exception ignored ... Traceback ... KeyboardInterrupt"
after the user's Ctrl-C).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

_pressed = False


def _on_ctrl_c(signum, frame):
    global _pressed
    _pressed = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def remembered():
    """Within the block, a Ctrl-C is remembered as well as raised, and
    one that nothing raised again by the block's end is raised there.

    Only where Python's own handler is in place: a process that ignores
    SIGINT (started with `&` from a script) keeps ignoring it, a handler of
    the caller's own is kept, and off the main thread (which alone may set
    handlers) this does nothing."""
    global _pressed
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    _pressed = False
    hook = sys.unraisablehook

    def quiet(unraisable):  # the press a finalizer dropped: raised again
        if not (_pressed and unraisable.exc_type is KeyboardInterrupt):
            hook(unraisable)

    sys.unraisablehook = quiet
    previous = signal.signal(signal.SIGINT, _on_ctrl_c)
    pressed = False
    try:
        yield
        pressed = _pressed
    finally:
        # The flag and hook first: a second press here leaves neither set.
        sys.unraisablehook = hook
        _pressed = False
        signal.signal(signal.SIGINT, previous)
    if pressed:  # dropped after the last check (a finalizer at the end),
        raise KeyboardInterrupt  # or caught inside and not raised again


def raise_if_pressed():
    """Raises `KeyboardInterrupt` if Ctrl-C was pressed under
    `remembered()`, whether or not its first raise was lost (once: this
    raise is not in a finalizer, so it is not lost)."""
    global _pressed
    if _pressed:
        _pressed = False
        raise KeyboardInterrupt
