"""``python -m bench._cpuprofile OUT MODULE ARGS…``: run ``MODULE`` as ``__main__`` under
cProfile timing CPU time (``time.process_time``), written to ``OUT`` on exit. Unlike
``-m cProfile`` (wall time), a wait for another process on a shared host is not charged to
the call that waited, so the profile shows where this process spends its CPU."""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
