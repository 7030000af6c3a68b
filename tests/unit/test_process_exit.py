"""The `hindsight` executable's exit: status codes kept, atexit handlers and threads finished."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent(
    """
    import atexit, sys, threading, time
    from hindsight.cli import run

    atexit.register(lambda: print("atexit ran", flush=True))
    def late_writer():
        time.sleep(0.2)
        print("thread finished", flush=True)
    threading.Thread(target=late_writer).start()
    sys.argv = ["hindsight", *sys.argv[1:]]
    run()
    """
)


@pytest.mark.parametrize(("args", "status"), [(["--help"], 0), (["no-such-command"], 2), (["registry", "show"], 2)])
def test_the_status_of_the_command_is_the_status_of_the_process(args, status):
    done = subprocess.run([sys.executable, "-c", PROGRAM, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == status, done.stderr
    # Python's own shutdown steps still happen: non-daemon threads joined, then atexit handlers.
    assert done.stdout.rstrip().splitlines()[-2:] == ["thread finished", "atexit ran"]
