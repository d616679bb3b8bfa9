"""Runs Ralph's xAPI LRS (ralph-malph) for the tests: the file-system
backend, in this process, on 127.0.0.1:PORT.

Two differences from `ralph runserver`: no auto-reloader (it would watch
files and fork a worker), and the file-system backend appends to its file.
Out of the box (ralph-malph 5.1) that backend refuses every write after the
first one ("already exists and overwrite is not allowed"), so an LRS client
that sends more than one request could never be tested against it.

Usage: python ralph_lrs.py PORT STORE_DIR   (RALPH_APP_DIR must hold auth.json)
"""

import os
import sys

port, store = int(sys.argv[1]), sys.argv[2]
os.environ["RALPH_RUNSERVER_BACKEND"] = "fs"
os.environ["RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH"] = store

from ralph.backends.data.base import BaseOperationType  # noqa: E402
from ralph.backends.lrs.fs import FSLRSBackend  # noqa: E402

FSLRSBackend.default_operation_type = BaseOperationType.APPEND

import uvicorn  # noqa: E402

uvicorn.run("ralph.api:app", host="127.0.0.1", port=port, log_level="warning")
