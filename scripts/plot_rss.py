#!/usr/bin/env python3
"""Plots resident memory over time from rss_soak.py CSVs (one line per CSV) into a PNG.

  plot_rss.py OUT.png LABEL=soak.csv [LABEL=soak2.csv ...]

Needs matplotlib (Debian: python3-matplotlib); only for the plots in docs/, not for CI.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for arg in sys.argv[2:]:
        label, path = arg.split("=", 1)
        with open(path) as f:
            rows = list(csv.DictReader(f))
        ax.plot([float(r["seconds"]) / 60 for r in rows],
                [int(r["rss_kib"]) / 1024 for r in rows], label=label)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title("moeserve serve: resident memory at concurrency 32 (scripts/rss_soak.py)")
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=100)


if __name__ == "__main__":
    main()
