"""Run a benchmark: ``python -m bench NAME [args...]``.

Each benchmark is a module ``bench.NAME`` with ``main(argv: list[str]) -> int``; it prints its
figures and a baseline measured in the same run.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _names() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main() -> int:
    names = _names()
    if len(sys.argv) < 2 or sys.argv[1] not in names:
        print(f"usage: python -m bench NAME [args...]; NAME is one of: {', '.join(names)}")
        return 2
    module = importlib.import_module(f"bench.{sys.argv[1]}")
    return int(module.main(sys.argv[2:]))


if __name__ == "__main__":
    raise SystemExit(main())
