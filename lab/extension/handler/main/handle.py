"""Entry point run by ``handle.sh``: ``python3 main/handle.py <operation>``.

The handler package sits next to this file (``main/vmsnapshot``), which Python puts on
``sys.path`` for a script; it is imported by name so this file stays a plain script.
"""

import importlib
import sys

if __name__ == "__main__":
    sys.exit(importlib.import_module("vmsnapshot.cli").main(sys.argv[1:]))
