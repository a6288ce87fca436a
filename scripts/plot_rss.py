#!/usr/bin/env python3
"""Plots resident memory over time from rss_soak.py CSVs into a PNG: one panel per group,
one line per CSV (VmRSS solid, RssAnon dashed when the CSV has it).

  plot_rss.py OUT.png "PANEL|LABEL=soak.csv" ["PANEL|LABEL=soak2.csv" ...]

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
    panels = {}
    for arg in sys.argv[2:]:
        name, path = arg.split("=", 1)
        panel, label = name.split("|", 1) if "|" in name else ("", name)
        panels.setdefault(panel, []).append((label, path))
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.6 * len(panels)), squeeze=False)
    for ax, (panel, series) in zip(axes[:, 0], panels.items()):
        for label, path in series:
            with open(path) as f:
                rows = list(csv.DictReader(f))
            minutes = [float(r["seconds"]) / 60 for r in rows]
            line, = ax.plot(minutes, [int(r["rss_kib"]) / 1024 for r in rows],
                            label=f"{label}: VmRSS")
            if "rss_anon_kib" in rows[0]:
                ax.plot(minutes, [int(r["rss_anon_kib"]) / 1024 for r in rows], "--",
                        color=line.get_color(), label=f"{label}: RssAnon")
        ax.set_title(panel)
        ax.set_xlabel("minutes")
        ax.set_ylabel("MiB")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=90)


if __name__ == "__main__":
    main()
