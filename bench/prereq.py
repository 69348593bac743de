"""What a benchmark needs before it can start: root, and the peers' programs on PATH."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence


def missing(tools: Sequence[str], root_for: str) -> bool:
    """Print what is missing to stderr and return True when the benchmark cannot run.

    ``root_for`` says what root is needed for (e.g. "network namespaces")."""
    if os.geteuid() != 0:
        print(f"needs root ({root_for})", file=sys.stderr)
        return True
    for tool in tools:
        if shutil.which(tool) is None:
            print(f"{tool} not installed", file=sys.stderr)
            return True
    return False
