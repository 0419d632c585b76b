"""What every process a test or benchmark starts needs (no pytest here, so
bench/ can import it too)."""
import ctypes
import signal

_PR_SET_PDEATHSIG = 1
# Looked up once here: the preexec_fn below runs between fork and exec and
# should do as little as possible.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the thread that started it exits."""
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
