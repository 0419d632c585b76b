"""Fixtures for the wsgate-echo tests; the process helpers are in echo_proc.py."""

import pytest

from echo_proc import EchoProcess, stop_echo_processes


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
    stop_echo_processes(procs)
