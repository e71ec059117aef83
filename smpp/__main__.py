"""``python -m smpp sim [options]``: run the SMSC simulator (see :mod:`smpp.simulator`)."""

from __future__ import annotations

import sys

from smpp import simulator


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("sim", "simulator", "smsc-sim"):
        print("usage: python -m smpp sim [--host H] [--port P] [...]; see sim --help")
        return 2
    return simulator.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
