"""How the `hindsight` process ends: Python's shutdown, without the native teardown that can abort.

pyarrow's dataset scanner can leave worker threads finishing up after a scan has returned every
row (apache/arrow#34314, #39862). If the process exits while they do, a C++ destructor finds a
running thread and calls `std::terminate`: the command has printed its output and done its work,
yet exits 134 ("terminate called without an active exception"), which fails CI scripts and
`make demo` at random. So the command line ends the way the interpreter would (non-daemon threads
joined, atexit handlers run, output flushed) and then leaves with `os._exit`, skipping only the
C++ static destructors. Library use (notebooks, tests) is unaffected: only the entry point does this.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading


def exit_code(code: object) -> int:
    """The process status `SystemExit(code)` means (None is 0; a message is printed and is 1).

    >>> exit_code(None), exit_code(0), exit_code(2), exit_code(True)
    (0, 0, 2, 1)
    """
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code)
    print(code, file=sys.stderr)
    return 1


def leave(code: int) -> None:
    """Finish as Python's own shutdown would, then exit without running C++ static destructors."""
    # What Py_FinalizeEx does first: join non-daemon threads (this also stops idle thread pools).
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (`hindsight ... | head`): nothing more can be written anyway.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
