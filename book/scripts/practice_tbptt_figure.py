"""Draw book/figures/tbptt_chunks.svg: truncated BPTT over a long sequence.

Two rows of time steps: with k1 = k2 (the state is carried forward across
every chunk border, the gradient stops there) and with k2 = 2 k1 (each
update re-reads the previous chunk so the gradient reaches k2 steps back).
Colours read in light and dark themes (mid-tone fills, transparent
background). Regenerate from the repository root:

    python book/scripts/practice_tbptt_figure.py
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "tbptt_chunks"    # the same file each run
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "figures" / "tbptt_chunks.svg"
N, K1 = 12, 4
LOSS, CONTEXT, GREY = "#e07b39", "#4c8bbf", "#8c8c8c"


def row(ax, y, k2, title):
    ax.text(-0.6, y + 1.55, title, fontsize=11, color=GREY, ha="left")
    for t in range(N):
        ax.add_patch(Rectangle((t, y), 0.8, 0.8, facecolor="none",
                               edgecolor=GREY, lw=1.2))
        ax.text(t + 0.4, y + 0.4, f"$x_{{{t + 1}}}$", ha="center",
                va="center", fontsize=9, color=GREY)
    for n, stop in enumerate(range(K1, N + 1, K1)):
        start, loss_start = max(0, stop - k2), stop - K1
        yy = y - 0.35 - 0.45 * n
        if loss_start > start:
            ax.add_patch(Rectangle((start, yy), loss_start - start - 0.2, 0.22,
                                   facecolor=CONTEXT, alpha=0.6, lw=0))
        ax.add_patch(Rectangle((loss_start, yy), K1 - 0.2, 0.22,
                               facecolor=LOSS, alpha=0.85, lw=0))
        ax.add_patch(FancyArrowPatch((stop - 0.2, yy + 0.11), (start, yy + 0.11),
                                     arrowstyle="-|>", mutation_scale=8,
                                     color="#555555", lw=0.8))
        if stop < N:
            ax.add_patch(FancyArrowPatch((stop - 0.15, y + 0.95), (stop + 0.35, y + 0.95),
                                         connectionstyle="arc3,rad=-0.6",
                                         arrowstyle="-|>", mutation_scale=9,
                                         color=CONTEXT, lw=1.4))
            ax.plot([stop - 0.1] * 2, [y - 0.1, y + 0.9], ls="--", color=GREY, lw=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT.parent,
                    help="folder to write tbptt_chunks.svg into")
    out = ap.parse_args(argv).out / OUT.name
    fig, ax = plt.subplots(figsize=(9, 5.2))
    row(ax, 4.2, K1, f"k1 = k2 = {K1}: one update per chunk, gradient cut at its border")
    row(ax, 0, 2 * K1, f"k1 = {K1}, k2 = {2 * K1}: the loss of {K1} new steps, "
        f"backpropagated {2 * K1} steps")
    ax.add_patch(Rectangle((0.2, -2.3), 0.6, 0.22, facecolor=LOSS, alpha=0.85))
    ax.text(1.0, -2.2, "steps whose loss is used", va="center", fontsize=9, color=GREY)
    ax.add_patch(Rectangle((4.6, -2.3), 0.6, 0.22, facecolor=CONTEXT, alpha=0.6))
    ax.text(5.4, -2.2, "steps the gradient also reaches", va="center", fontsize=9, color=GREY)
    ax.text(0.2, -2.85, "curved arrows: the state carried across a border (a constant: no gradient)",
            fontsize=9, color=GREY)
    ax.set_xlim(-0.7, N + 0.2)
    ax.set_ylim(-3.1, 6.2)
    ax.axis("off")
    fig.savefig(out, transparent=True, bbox_inches="tight",
                metadata={"Date": None})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
