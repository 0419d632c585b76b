"""Fixtures for the wsgate-echo tests; the process helpers are in echo_proc.py."""

import signal

import pytest

from echo_proc import EchoProcess


@pytest.fixture
def start_echo():
    """Factory: start_echo(*extra_args) -> a listening EchoProcess.

    At teardown each server still running gets SIGTERM and must exit 0 within
    STOP_TIMEOUT with no sanitizer report; anything left is killed."""
    procs = []

    def start(*args):
        p = EchoProcess(*args)
        procs.append(p)
        p.wait_listening()
        return p

    yield start

    problems = []
    for p in procs:
        try:
            if p.proc.poll() is None:
                code, _ = p.signal_and_wait(signal.SIGTERM)
                if code != 0:
                    problems.append(f"wsgate-echo exited {code} on SIGTERM; "
                                    f"stderr: {p.stderr_text()}")
            p.join_readers()
            p.assert_no_sanitizer_reports()
        except AssertionError as e:
            problems.append(str(e))
        finally:
            p.kill()
    if problems:
        pytest.fail("\n".join(problems))
