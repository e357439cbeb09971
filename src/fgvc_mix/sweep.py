"""Rebuild a multirun's summary by hand: ``python -m fgvc_mix.sweep <multirun dir>`` (e.g. after a SLURM sweep).

Hydra does this itself after every job through ``fgvc_mix.training.sweep_summary.SweepSummary``.
"""

from __future__ import annotations

import sys

from fgvc_mix.training.sweep_summary import print_summary


def main(argv: list[str]) -> None:
    """Parse ``<multirun directory>``, rebuild its summary and print it."""
    if len(argv) != 1:
        raise SystemExit("usage: python -m fgvc_mix.sweep <multirun directory>")
    print_summary(argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
