"""The book's diagrams: recurrent cells, unrolled graphs, network shapes.

Every diagram is drawn here with matplotlib's drawing API and written as an
SVG to book/figures/, which the chapters include with a ``{figure}``
directive (caption and alt text live in the chapter, labels live here):

    python book/scripts/diagrams.py            # rewrite book/figures/*.svg
    python book/scripts/diagrams.py --out DIR  # write them somewhere else
    python book/scripts/diagrams.py --only lstm_forget

The output is deterministic (fixed SVG ids, no date), so a test regenerates
the figures into a temporary folder and compares them with the committed
ones: change a label here, rerun, commit both.

Each figure sits on a light card with a thin border, so it reads the same in
the book's light and dark themes. A figure is drawn for the page's width:
every label of the cell diagrams and of the newer figures (``LEGIBLE``) is
checked, when the figure is saved, to render at least MIN_PX pixels tall
on a text column of PAGE_PX pixels (the figure scaled to the column).
Gates use the colours of their gate everywhere (input i green, forget f
red, candidate g or n blue, output o purple, GRU reset r orange, update z
teal); whatever a step of a cell diagram does not use is drawn in pale grey.
"""

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import (Circle, FancyArrowPatch,  # noqa: E402
                                FancyBboxPatch)
from matplotlib.path import Path as MPath  # noqa: E402

FIGURES_DIR = Path(__file__).resolve().parents[1] / "figures"
PAGE_PX = 500          # a narrow text column, in CSS pixels
MIN_PX = 12            # the smallest label, as rendered there
_drawn = {"width": None, "sizes": []}   # the figure being drawn

# ------------------------------------------------------------------ style

INK = "#1f2328"        # lines and text
FADE = "#c9ced4"       # parts a step does not use
CARD = "#ffffff"       # the card behind every figure
CARD_EDGE = "#d0d7de"
BODY = "#f3f5f8"       # the cell's body
GRAD = "#c2185b"       # gradients (backward arrows)
GATE = {"i": "#2e8b57", "f": "#c0392b", "g": "#1f6fb2", "o": "#7d3c98",
        "r": "#d35400", "z": "#138d90", "n": "#1f6fb2", "h": "#1f6fb2"}

plt.rcParams.update({
    "svg.fonttype": "path",       # glyphs as paths: same look on every browser
    "svg.hashsalt": "lstmlib-course",
    "font.family": "DejaVu Sans",
    "font.size": 11,
    "mathtext.fontset": "cm",
})


def card(width, height):
    """A figure of width x height inches whose data units are inches."""
    fig = plt.figure(figsize=(width, height))
    _drawn["width"], _drawn["sizes"] = width, []
    fig.patch.set_alpha(0)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.add_patch(FancyBboxPatch(
        (0.03, 0.03), width - 0.06, height - 0.06,
        boxstyle="round,pad=0,rounding_size=0.12",
        fc=CARD, ec=CARD_EDGE, lw=1, zorder=0))
    return fig, ax


def line(ax, points, color=INK, lw=1.6, arrow=True, ls="-", z=2):
    """A polyline through `points`, with an arrowhead at the end."""
    codes = [MPath.MOVETO] + [MPath.LINETO] * (len(points) - 1)
    ax.add_patch(FancyArrowPatch(
        path=MPath(points, codes), arrowstyle="-|>" if arrow else "-",
        mutation_scale=11, color=color, lw=lw, ls=ls, zorder=z,
        joinstyle="miter", capstyle="butt"))


def box(ax, x, y, text, color, w=0.56, h=0.4, fill=True, size=12):
    """A layer (weights + activation) centred at (x, y)."""
    ax.add_patch(FancyBboxPatch(
        (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.07",
        fc=color if fill else CARD, ec=color, lw=1.6, zorder=3))
    if text:
        _drawn["sizes"].append(size)
    ax.text(x, y, text, ha="center", va="center", size=size, zorder=4,
            color="white" if fill else color)


def op(ax, x, y, text, color=INK, r=0.16, size=12):
    """A point-wise operation (a circle) centred at (x, y)."""
    ax.add_patch(Circle((x, y), r, fc=CARD, ec=color, lw=1.6, zorder=3))
    _drawn["sizes"].append(size)
    ax.text(x, y, text, ha="center", va="center", size=size, color=color,
            zorder=4)


def label(ax, x, y, text, color=INK, size=12, **kw):
    kw.setdefault("ha", "center")
    kw.setdefault("va", "center")
    _drawn["sizes"].append(size)
    ax.text(x, y, text, color=color, size=size, zorder=5, **kw)


def dot(ax, x, y, color=INK):
    ax.add_patch(Circle((x, y), 0.04, fc=color, ec=color, zorder=4))


def panel(fig, width, height, y0, h):
    """Axes over the band y0..y0+h of a card, in inches from the band's
    bottom-left corner (a cell drawn in its own coordinates)."""
    ax = fig.add_axes([0, y0 / height, 1, h / height])
    ax.set_xlim(0, width)
    ax.set_ylim(0, h)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.patch.set_alpha(0)
    return ax


def legend(ax, x, y):
    """What the glyphs mean: a layer, an element-wise operation, lines that
    join (concatenation) or split (a copy)."""
    box(ax, x + 0.25, y, r"$\sigma$", INK, w=0.42, h=0.32, fill=False, size=11)
    label(ax, x + 0.6, y, "layer: weights, bias, activation", ha="left", size=10)
    op(ax, x + 0.25, y - 0.45, r"$\times$", r=0.15, size=11)
    label(ax, x + 0.6, y - 0.45, "element-wise operation", ha="left", size=10)
    line(ax, [(x, y - 0.9), (x + 0.25, y - 0.9), (x + 0.5, y - 0.9)], arrow=False)
    line(ax, [(x + 0.25, y - 1.08), (x + 0.25, y - 0.9)], arrow=False)
    dot(ax, x + 0.25, y - 0.9)
    label(ax, x + 0.6, y - 0.9, "lines that meet: concatenated; that fork: copied",
          ha="left", size=10)


def gate_strip(ax, x, y, gates, names, on):
    """PyTorch's row blocks of weight_ih / weight_hh, the active ones coloured."""
    label(ax, x, y + 0.3, "rows of weight_ih_l0 and weight_hh_l0, in PyTorch's order",
          size=10, ha="left")
    for k, (g, name) in enumerate(zip(gates, names)):
        c = GATE[g] if g in on else FADE
        ax.add_patch(FancyBboxPatch(
            (x + k * 0.75, y - 0.15), 0.7, 0.3,
            boxstyle="round,pad=0,rounding_size=0.04",
            fc=c, ec=c, zorder=3))
        label(ax, x + k * 0.75 + 0.35, y, name, color="white", size=11)


def cell_body(ax, x0, y0, x1, y1):
    ax.add_patch(FancyBboxPatch(
        (x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=0.18",
        fc=BODY, ec="#aab3bd", lw=1.2, zorder=1))


def rendered_px(size, width=None):
    """Height in CSS pixels of a `size`-point label on a figure `width`
    inches wide, scaled to a PAGE_PX column (72 points to the inch)."""
    return size * PAGE_PX / (72 * (width or _drawn["width"]))


def save(fig, name, out):
    if name in LEGIBLE:
        small = min(_drawn["sizes"])
        if rendered_px(small) < MIN_PX:
            raise ValueError(
                f"{name}: its smallest label ({small} pt on {_drawn['width']} "
                f"in) renders at {rendered_px(small):.1f} px on a {PAGE_PX} px "
                f"page, expected at least {MIN_PX} px")
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.svg", format="svg",
                metadata={"Date": None, "Creator": "book/scripts/diagrams.py"})
    plt.close(fig)


# ------------------------------------------------------------------ cells

def rnn_cell(out):
    fig, ax = card(4.4, 3.45)
    label(ax, 0.25, 3.15, "The Elman RNN cell", ha="left", weight="bold")
    cell_body(ax, 0.7, 0.55, 3.5, 2.55)
    line(ax, [(0.15, 1.2), (1.8, 1.2), (1.8, 1.43)])      # h_{t-1}
    line(ax, [(1.8, 0.2), (1.8, 1.43)])                   # x_t
    dot(ax, 1.8, 1.2)
    box(ax, 1.8, 1.65, r"$\tanh$", GATE["h"], w=0.7)
    line(ax, [(1.8, 1.85), (1.8, 2.2), (4.0, 2.2)])       # h_t to the next step
    line(ax, [(2.8, 2.2), (2.8, 2.95)])                   # h_t as output
    dot(ax, 2.8, 2.2)
    label(ax, 0.3, 1.42, r"$h_{t-1}$")
    label(ax, 2.1, 0.35, r"$x_t$")
    label(ax, 3.95, 2.45, r"$h_t$")
    label(ax, 3.1, 2.95, r"$h_t$")
    save(fig, "rnn_cell", out)


LSTM_EQ = {
    "i": r"$i_t = \sigma(W_{ii}x_t + b_{ii} + W_{hi}h_{t-1} + b_{hi})$",
    "f": r"$f_t = \sigma(W_{if}x_t + b_{if} + W_{hf}h_{t-1} + b_{hf})$",
    "g": r"$g_t = \tanh(W_{ig}x_t + b_{ig} + W_{hg}h_{t-1} + b_{hg})$",
    "o": r"$o_t = \sigma(W_{io}x_t + b_{io} + W_{ho}h_{t-1} + b_{ho})$",
    "c": r"$c_t = f_t \odot c_{t-1} + i_t \odot g_t$",
    "h": r"$h_t = o_t \odot \tanh(c_t)$",
}
LSTM_STEPS = {
    # name: (title, parts drawn in colour, equations, note)
    "lstm_cell": ("The LSTM cell", set("ifgoch"), list("ifgoch"), None),
    "lstm_forget": ("Step 1: the forget gate", {"f"}, ["f"],
                    "$f_t$ near 0 erases a unit of $c_{t-1}$;\nnear 1 keeps it"),
    "lstm_input": ("Step 2: the input gate and the candidate", {"i", "g"},
                   ["i", "g"],
                   "$g_t$ proposes values in $(-1, 1)$;\n$i_t$ says how much of each to write"),
    "lstm_update": ("Step 3: the cell update", {"c"}, ["c"],
                    "forget, then add: the additive path\nthat carries gradients far back"),
    "lstm_output": ("Step 4: the output gate", {"o", "h"}, ["o", "h"],
                    "$o_t$ picks which units of $\\tanh(c_t)$\nthe next step and the output see"),
}


def lstm_cell_diagram(out, name):
    title, on, eqs, note = LSTM_STEPS[name]
    whole = name == "lstm_cell"
    band = 2.25 if whole else 0.85           # the legend and the row strip
    fig, base = card(5.0, 4.3 + band)
    ax = panel(fig, 5.0, 4.3 + band, band, 4.3)
    label(ax, 0.25, 4.02, title, ha="left", weight="bold")

    def col(part):
        return GATE[part] if part in on else FADE

    cell_col = INK if "c" in on else FADE
    cell_body(ax, 0.55, 0.5, 4.45, 3.45)
    # the cell state: c_{t-1} -> x -> + -> c_t
    line(ax, [(0.1, 3.0), (1.14, 3.0)], color=INK if on & {"c", "f"} else FADE,
         lw=2.4)
    line(ax, [(1.46, 3.0), (2.44, 3.0)], color=cell_col, lw=2.4)
    line(ax, [(2.76, 3.0), (4.9, 3.0)], color=cell_col, lw=2.4)
    label(ax, 0.35, 3.22, r"$c_{t-1}$")
    label(ax, 4.75, 3.22, r"$c_t$")
    # the inputs: h_{t-1} from the left, x_t from below, to every gate
    line(ax, [(0.1, 0.95), (3.35, 0.95)], arrow=False)
    line(ax, [(0.95, 0.15), (0.95, 0.95)], arrow=False)
    dot(ax, 0.95, 0.95)
    label(ax, 0.35, 0.75, r"$h_{t-1}$")
    label(ax, 1.2, 0.3, r"$x_t$")
    gates = {"f": 1.3, "i": 1.95, "g": 2.6, "o": 3.35}
    for g, x in gates.items():
        line(ax, [(x, 0.95), (x, 1.15)], color=INK if g in on else FADE)
        dot(ax, x, 0.95)
        box(ax, x, 1.35, r"$\tanh$" if g == "g" else r"$\sigma$", col(g),
            w=0.52)
        label(ax, x + 0.07, 1.75, f"${g}_t$", color=col(g), size=11, ha="left")
    # forget: f_t times c_{t-1}
    line(ax, [(1.3, 1.55), (1.3, 2.84)], color=col("f"))
    op(ax, 1.3, 3.0, r"$\times$",
       color=GATE["f"] if "f" in on else INK if "c" in on else FADE)
    # input: i_t times g_t, added to the cell state
    line(ax, [(1.95, 1.55), (1.95, 2.2), (2.44, 2.2)], color=col("i"))
    line(ax, [(2.6, 1.55), (2.6, 2.04)], color=col("g"))
    op(ax, 2.6, 2.2, r"$\times$", color=INK if on & {"i", "g", "c"} else FADE)
    line(ax, [(2.6, 2.36), (2.6, 2.84)], color=cell_col)
    op(ax, 2.6, 3.0, "+", color=cell_col, size=14)
    # output: o_t times tanh(c_t)
    hcol = GATE["o"] if "h" in on else FADE
    line(ax, [(3.9, 3.0), (3.9, 2.62)], color=hcol)
    dot(ax, 3.9, 3.0, color=hcol)
    op(ax, 3.9, 2.45, r"$\tanh$", color=hcol, r=0.19, size=10)
    line(ax, [(3.9, 2.26), (3.9, 1.96)], color=hcol)
    line(ax, [(3.35, 1.55), (3.35, 1.8), (3.74, 1.8)], color=col("o"))
    op(ax, 3.9, 1.8, r"$\times$", color=hcol)
    line(ax, [(4.06, 1.8), (4.2, 1.8), (4.2, 0.95), (4.9, 0.95)], color=hcol)
    line(ax, [(4.2, 1.8), (4.2, 3.75)], color=hcol)
    dot(ax, 4.2, 1.8, color=hcol)
    label(ax, 4.75, 0.75, r"$h_t$")
    label(ax, 4.45, 3.7, r"$h_t$")
    # PyTorch's gate order and, on the whole cell, what the glyphs mean
    gate_strip(base, 0.3, band - 0.5, "ifgo", ["i", "f", "g", "o"],
               set("ifgo") if whole else on)
    if whole:
        legend(base, 0.3, band - 1.2)
    save(fig, name, out)


GRU_EQ = {
    "r": r"$r_t = \sigma(W_{ir}x_t + b_{ir} + W_{hr}h_{t-1} + b_{hr})$",
    "z": r"$z_t = \sigma(W_{iz}x_t + b_{iz} + W_{hz}h_{t-1} + b_{hz})$",
    "n": r"$n_t = \tanh(W_{in}x_t + b_{in} + r_t \odot (W_{hn}h_{t-1} + b_{hn}))$",
    "h": r"$h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}$",
}
GRU_STEPS = {
    "gru_cell": ("The GRU cell (PyTorch's form)", set("rznh"), list("rznh"),
                 None),
    "gru_reset": ("Step 1: the reset gate", {"r"}, ["r"],
                  "$r_t$ scales $W_{hn}h_{t-1} + b_{hn}$, after the\n"
                  "matrix product and its bias (PyTorch)"),
    "gru_update": ("Step 2: the update gate", {"z"}, ["z"],
                   "$z_t$ near 1 keeps a unit of $h_{t-1}$;\nnear 0 replaces it"),
    "gru_candidate": ("Step 3: the candidate", {"n"}, ["n"],
                      "the new content, computed from $x_t$\nand the reset past"),
    "gru_state": ("Step 4: the new state", {"h"}, ["h"],
                  "keep $z_t$ of the old state, write $1 - z_t$\nof the candidate"),
}


def gru_cell_diagram(out, name):
    title, on, eqs, note = GRU_STEPS[name]
    whole = name == "gru_cell"
    band = 2.25 if whole else 0.85
    fig, base = card(5.2, 4.3 + band)
    ax = panel(fig, 5.2, 4.3 + band, band, 4.3)
    label(ax, 0.25, 4.02, title, ha="left", weight="bold")

    def col(part):
        return GATE[part] if part in on else FADE

    hcol = INK if "h" in on else FADE
    cell_body(ax, 0.55, 0.5, 4.65, 3.45)
    # the state line h_{t-1} -> x (z) -> + -> h_t
    line(ax, [(0.1, 3.05), (3.44, 3.05)], color=INK if on & {"h", "z"} else FADE,
         lw=2.4)
    line(ax, [(3.76, 3.05), (4.14, 3.05)], color=hcol, lw=2.4)
    line(ax, [(4.46, 3.05), (5.0, 3.05)], color=hcol, lw=2.4)
    label(ax, 0.35, 3.27, r"$h_{t-1}$")
    label(ax, 4.85, 3.27, r"$h_t$")
    # the inputs to the gates
    line(ax, [(0.35, 3.05), (0.35, 0.95), (3.6, 0.95)], arrow=False)
    dot(ax, 0.35, 3.05)
    line(ax, [(0.95, 0.15), (0.95, 0.95)], arrow=False)
    dot(ax, 0.95, 0.95)
    label(ax, 1.2, 0.3, r"$x_t$")
    for g, x in {"r": 1.35, "z": 3.6}.items():
        line(ax, [(x, 0.95), (x, 1.15)], color=INK if g in on else FADE)
        dot(ax, x, 0.95)
        box(ax, x, 1.35, r"$\sigma$", col(g), w=0.52)
        label(ax, x - 0.07, 1.75, f"${g}_t$", color=col(g), size=11,
              ha="right")
    # reset: r_t times (W_hn h_{t-1} + b_hn), PyTorch's order
    rn = INK if on & {"r", "n"} else FADE
    line(ax, [(2.15, 3.05), (2.15, 2.86)], color=rn)
    dot(ax, 2.15, 3.05, color=rn)
    box(ax, 2.15, 2.66, r"$W_{hn}h + b_{hn}$", rn, w=1.15, h=0.36,
        fill=False, size=10)
    line(ax, [(2.15, 2.48), (2.15, 2.36)], color=rn)
    line(ax, [(1.35, 1.55), (1.35, 2.2), (1.99, 2.2)], color=col("r"))
    op(ax, 2.15, 2.2, r"$\times$", color=GATE["r"] if "r" in on else rn)
    # candidate n_t from x_t and the reset past
    ncol = col("n")
    line(ax, [(2.31, 2.2), (2.62, 2.2)], color=rn)
    line(ax, [(2.9, 0.95), (2.9, 2.0)], color=INK if "n" in on else FADE)
    dot(ax, 2.9, 0.95)
    box(ax, 2.9, 2.2, r"$\tanh$", ncol, w=0.56)
    label(ax, 2.82, 1.5, r"$W_{in}x_t + b_{in}$", size=10,
          color=INK if "n" in on else FADE, ha="right")
    label(ax, 3.05, 2.55, r"$n_t$", color=ncol, size=11)
    # z_t keeps h_{t-1}; 1 - z_t writes n_t
    zcol = GATE["z"] if on & {"z", "h"} else FADE
    line(ax, [(3.6, 1.55), (3.6, 2.89)], color=zcol)
    op(ax, 3.6, 3.05, r"$\times$", color=hcol if "h" in on else zcol)
    line(ax, [(3.6, 1.75), (4.14, 1.75)], color=zcol)
    dot(ax, 3.6, 1.75, color=zcol)
    op(ax, 4.3, 1.75, r"$1-$", color=zcol, r=0.17, size=10)
    line(ax, [(4.3, 1.92), (4.3, 2.09)], color=zcol)
    line(ax, [(3.18, 2.25), (4.14, 2.25)], color=INK if on & {"n", "h"} else FADE)
    op(ax, 4.3, 2.25, r"$\times$", color=hcol)
    line(ax, [(4.3, 2.41), (4.3, 2.89)], color=hcol)
    op(ax, 4.3, 3.05, "+", color=hcol, size=14)
    gate_strip(base, 0.3, band - 0.5, "rzn", ["r", "z", "n"],
               set("rzn") if whole else on)
    if whole:
        legend(base, 0.3, band - 1.2)
    save(fig, name, out)


# ------------------------------------------------------- unrolled graphs

def bptt(out):
    """The unrolled RNN, forward (black) and backward (red) paths."""
    T = 4
    fig, ax = card(9.0, 4.6)
    xs = [1.9 + 1.8 * k for k in range(T)]
    yx, yh, yl = 1.15, 2.35, 3.5
    box(ax, 0.7, yh, r"$h_0$", INK, fill=False, w=0.5)
    for k, x in enumerate(xs):
        t = k + 1
        op(ax, x, yx, f"$x_{t}$", r=0.22, size=11)
        box(ax, x, yh, f"$h_{t}$", GATE["h"], w=0.6)
        op(ax, x, yl, rf"$\ell_{t}$", r=0.22, size=11)
        line(ax, [(x, yx + 0.22), (x, yh - 0.2)])
        line(ax, [(x, yh + 0.2), (x, yl - 0.22)])
        prev = xs[k - 1] if k else 0.7
        pw = 0.3 if k else 0.25
        line(ax, [(prev + pw, yh + 0.07), (x - 0.3, yh + 0.07)])
        # backward: the carried gradient, and the step's own loss
        line(ax, [(x - 0.3, yh - 0.09), (prev + pw, yh - 0.09)], color=GRAD,
             ls="--", lw=1.4)
        line(ax, [(x + 0.14, yl - 0.2), (x + 0.14, yh + 0.2)], color=GRAD,
             ls="--", lw=1.4)
        # every step's gradient is added to the shared weights' gradient
        line(ax, [(x + 0.22, yh - 0.2), (x + 0.45, 0.62)], color=GRAD,
             lw=1.0, ls=":")
    label(ax, (xs[0] + 0.7) / 2 + 0.05, yh - 0.3,
          r"$W_{hh}^{\top}\delta a_1$", color=GRAD, size=10)
    for k in range(1, T):
        label(ax, (xs[k] + xs[k - 1]) / 2, yh - 0.3,
              rf"$W_{{hh}}^{{\top}}\delta a_{k + 1}$", color=GRAD, size=10)
    label(ax, xs[-1] + 0.55, (yh + yl) / 2 + 0.05,
          r"$\partial\ell_t/\partial h_t$", color=GRAD, size=10, ha="left")
    ax.add_patch(FancyBboxPatch(
        (1.5, 0.2), 6.9, 0.4, boxstyle="round,pad=0,rounding_size=0.06",
        fc=CARD, ec=GRAD, lw=1.2, zorder=3))
    label(ax, 4.95, 0.4,
          r"shared weights: $\partial L/\partial W_{hh} = "
          r"\sum_t\, \delta a_t\, h_{t-1}^{\top}$  (one term per step)",
          color=GRAD, size=10.5)
    label(ax, 4.5, 4.2, r"$L = \ell_1 + \ell_2 + \ell_3 + \ell_4$", size=12)
    label(ax, 0.25, 4.2, "forward", ha="left", size=10)
    line(ax, [(1.05, 4.2), (1.6, 4.2)])
    label(ax, 6.6, 4.2, "backward", ha="left", size=10, color=GRAD)
    line(ax, [(7.55, 4.2), (8.1, 4.2)], color=GRAD, ls="--", lw=1.4)
    save(fig, "bptt", out)


def tbptt(out):
    """Truncated BPTT against independent windows from a zero state."""
    n, k = 9, 3
    fig, ax = card(9.9, 4.4)
    xs = [0.95 + 0.9 * j + 0.45 * (j // k) for j in range(n)]

    def row(y, carried):
        for j, x in enumerate(xs):
            box(ax, x, y, f"$h_{{{j + 1}}}$", GATE["h"], w=0.5, h=0.36,
                size=10)
            starts = j % k == 0
            if j and (carried or not starts):
                line(ax, [(xs[j - 1] + 0.25, y + 0.06), (x - 0.25, y + 0.06)])
            if j and not starts:
                line(ax, [(x - 0.25, y - 0.09), (xs[j - 1] + 0.25, y - 0.09)],
                     color=GRAD, ls="--", lw=1.3)
            if starts and not carried:
                box(ax, x - 0.62, y, "$0$", INK, w=0.28, h=0.3, fill=False,
                    size=10)
                line(ax, [(x - 0.48, y + 0.06), (x - 0.25, y + 0.06)])
        for c in range(1, n // k):
            xb = (xs[c * k - 1] + xs[c * k]) / 2
            ax.plot([xb, xb], [y - 0.35, y + 0.35], color="#8c959f", lw=1,
                    ls=(0, (2, 2)), zorder=2)

    label(ax, 0.3, 4.0, "Truncated BPTT (chunks of k = 3 steps)", ha="left",
          weight="bold")
    row(3.1, carried=True)
    label(ax, 0.3, 2.45,
          "the state is carried across chunk boundaries (forward, black); "
          "the gradient stops there (backward, red):\n"
          "one forward, backward and update per chunk",
          ha="left", va="top", size=9.5, color="#57606a")
    label(ax, 0.3, 1.75, "Independent windows: not truncated BPTT", ha="left",
          weight="bold")
    row(0.95, carried=False)
    label(ax, 9.6, 0.45,
          "every window starts again from a zero state", ha="right",
          size=9.5, color="#57606a")
    save(fig, "tbptt", out)


def tbptt_chunks(out):
    """Truncated BPTT over 12 steps, k1 = 4: with k2 = 4 and with k2 = 8."""
    n, k1, size = 12, 4, 13.5
    fig, ax = card(7.4, 6.3)
    xs = [0.75 + 0.55 * j for j in range(n)]

    def row(y, k2, title):
        label(ax, 0.25, y + 0.62, title, ha="left", size=size, weight="bold")
        for j, x in enumerate(xs):
            box(ax, x, y, "", GATE["h"], w=0.36, h=0.3)
            if j:
                line(ax, [(xs[j - 1] + 0.18, y), (x - 0.18, y)], lw=1.3)
        for border in range(k1, n, k1):
            xb = (xs[border - 1] + xs[border]) / 2
            ax.plot([xb, xb], [y - 0.3, y + 0.3], color="#8c959f", lw=1,
                    ls=(0, (2, 2)), zorder=2)
        for u, stop in enumerate(range(k1, n + 1, k1)):
            start, first = max(0, stop - k2), stop - k1
            yy = y - 0.5 - 0.32 * u
            if first > start:                     # reached, loss not counted
                ax.plot([xs[start] - 0.15, xs[first - 1] + 0.15], [yy, yy],
                        color=GATE["g"], lw=6, alpha=0.35, solid_capstyle="butt")
            ax.plot([xs[first] - 0.15, xs[stop - 1] + 0.15], [yy, yy],
                    color=GATE["r"], lw=6, solid_capstyle="butt")
            line(ax, [(xs[stop - 1] + 0.15, yy - 0.13), (xs[start] - 0.15, yy - 0.13)],
                 color=GRAD, ls="--", lw=1.2)

    row(5.3, k1, "k1 = k2 = 4: one update per chunk")
    row(2.75, 2 * k1, "k1 = 4, k2 = 8: each update re-reads a chunk")
    label(ax, xs[0], 0.95, "$t = 1$", size=size)
    label(ax, xs[-1], 0.95, "$t = 12$", size=size)
    ax.plot([0.4, 0.9], [0.5, 0.5], color=GATE["r"], lw=6, solid_capstyle="butt")
    label(ax, 1.05, 0.5, "loss counted", ha="left", size=size)
    ax.plot([2.75, 3.25], [0.5, 0.5], color=GATE["g"], lw=6, alpha=0.35,
            solid_capstyle="butt")
    label(ax, 3.4, 0.5, "gradient reaches, no loss", ha="left", size=size)
    line(ax, [(0.9, 0.18), (0.4, 0.18)], color=GRAD, ls="--", lw=1.2)
    label(ax, 1.05, 0.18, "gradient; black: the state, carried over every border",
          ha="left", size=size)
    save(fig, "tbptt_chunks", out)


def lstm_chain(out):
    """Three LSTM steps unrolled: the cell state runs through all of them,
    and the gradient along it is multiplied by one forget gate per step."""
    size = 13.5
    fig, ax = card(7.6, 4.6)
    x0s = [0.55, 2.9, 5.25]
    yc, yh, yg = 3.3, 1.05, 1.85
    label(ax, 0.25, 4.3, "The LSTM unrolled: the cell state runs through every step",
          ha="left", size=size, weight="bold")
    line(ax, [(0.1, yc), (x0s[0] + 0.55, yc)], lw=2.4)
    line(ax, [(0.1, yh), (x0s[0] + 0.2, yh)], arrow=False)
    for k, x0 in enumerate(x0s):
        t = ["t-1", "t", "t+1"][k]
        cell_body(ax, x0, 0.75, x0 + 2.05, 3.7)
        xf, xa, xo = x0 + 0.45, x0 + 1.3, x0 + 1.72
        op(ax, xf, yc, r"$\times$", color=GATE["f"], size=size)
        op(ax, xa, yc, "+", size=size)
        line(ax, [(xf + 0.16, yc), (xa - 0.16, yc)], lw=2.4)
        nxt = x0s[k + 1] + 0.55 if k < 2 else 7.5
        line(ax, [(xa + 0.16, yc), (nxt, yc)], lw=2.4)
        # the gates read h_{t-1} (and x_t, from below)
        line(ax, [(x0 + 0.2, yh), (xo, yh)], arrow=False)
        for g, xg in (("f", xf), ("i", x0 + 0.88), ("g", xa), ("o", xo)):
            box(ax, xg, yg, f"${g}$", GATE[g], w=0.34, h=0.36, size=size)
            line(ax, [(xg, yh), (xg, yg - 0.18)], lw=1.2)
            dot(ax, xg, yh)
        line(ax, [(xf, yg + 0.18), (xf, yc - 0.16)], color=GATE["f"])
        line(ax, [(xa, yg + 0.18), (xa, yc - 0.16)], color=GATE["g"])
        line(ax, [(x0 + 0.88, yg + 0.18), (x0 + 0.88, 2.6), (xa, 2.6)],
             color=GATE["i"], arrow=False)
        line(ax, [(xo, yg + 0.18), (xo, 2.55), (x0 + 2.05, 2.55)], color=GATE["o"],
             arrow=False)
        line(ax, [(x0 + 2.05, 2.55), (x0 + 2.2, 2.55), (x0 + 2.2, yh),
                  (x0s[k + 1] + 0.2 if k < 2 else 7.5, yh)],
             color=GATE["o"], arrow=k == 2)
        label(ax, x0 + 1.02, 0.45, f"step ${t}$", size=size)
    label(ax, 0.3, yc + 0.25, "$c$", size=size)
    label(ax, 0.3, yh + 0.25, "$h$", size=size)
    # the gradient along c: one forget gate per step, nothing else
    line(ax, [(7.3, yc + 0.42), (0.3, yc + 0.42)], color=GRAD, ls="--", lw=1.5)
    label(ax, 4.4, yc + 0.67, r"gradient along $c$: $\times f$ at each step",
          color=GRAD, size=size)
    line(ax, [(7.3, yh - 0.18), (0.3, yh - 0.18)], color=GRAD, ls=":", lw=1.3)
    label(ax, 3.95, 0.18, r"and through $h$: $W_{hh}$ and the gates' derivatives",
          color=GRAD, size=size)
    save(fig, "lstm_chain", out)


def attention(out):
    """Additive attention: the decoder's previous state queries every
    encoder state; their weighted average enters the decoder's step."""
    size = 13.5
    fig, ax = card(7.4, 5.0)
    ks = [0.8 + 1.05 * s for s in range(4)]
    yk, ye, ya, yc = 0.75, 1.95, 2.9, 3.95
    label(ax, 0.25, 4.65, "Additive attention at decoder step $t$", ha="left",
          size=size, weight="bold")
    for s, x in enumerate(ks):
        box(ax, x, yk, f"$k_{s + 1}$", GATE["g"], w=0.5, h=0.4, size=size)
        if s:
            line(ax, [(ks[s - 1] + 0.25, yk), (x - 0.25, yk)])
        op(ax, x, ye, f"$e_{s + 1}$", r=0.24, size=size)
        line(ax, [(x, yk + 0.2), (x, ye - 0.24)])
        line(ax, [(x, ye + 0.24), (x, ya - 0.2)], color=GATE["r"])
    label(ax, ks[0] - 0.3, 0.3, "encoder states $k_s$ (keys, and the values averaged)",
          size=size, ha="left", color=GATE["g"])
    ax.add_patch(FancyBboxPatch((ks[0] - 0.3, ya - 0.2), ks[-1] - ks[0] + 0.6, 0.4,
                                boxstyle="round,pad=0,rounding_size=0.06",
                                fc=CARD, ec=GATE["r"], lw=1.6, zorder=3))
    label(ax, (ks[0] + ks[-1]) / 2, ya, r"softmax: weights $\alpha_s$",
          size=size, color=GATE["r"])
    xs_sum = (ks[0] + ks[-1]) / 2
    op(ax, xs_sum, yc, r"$\Sigma$", r=0.26, size=size)
    for x in ks:                       # the weights, and the keys they weigh
        line(ax, [(x, ya + 0.2), (xs_sum + 0.6 * (x - xs_sum) / 2, yc - 0.2)],
             color=GATE["r"], lw=1.2)
    label(ax, xs_sum - 0.4, yc + 0.38, r"$c^{att}_t = \sum_s \alpha_s k_s$", size=size,
          ha="right")
    # the query: the decoder's previous state, compared with every key
    xq, xd = 5.6, 6.65
    box(ax, xq, yk + 0.6, "$h_{t-1}$", GATE["o"], w=0.7, h=0.4, size=size)
    label(ax, xq + 0.45, yk + 0.15, "decoder", size=size, color=GATE["o"], ha="left")
    line(ax, [(xq, yk + 0.8), (xq, 1.45), (ks[0], 1.45)], color=GATE["o"], arrow=False)
    for x in ks:
        dot(ax, x, 1.45, color=GATE["o"])
    label(ax, 5.5, 1.7, "query", size=size, color=GATE["o"], ha="right")
    # the context enters the decoder's step, and its read-out
    box(ax, xd, 2.6, "LSTM", GATE["o"], w=0.8, h=0.45, size=size)
    line(ax, [(xs_sum + 0.26, yc), (xd, yc), (xd, 2.83)])
    line(ax, [(xq + 0.35, yk + 0.6), (xd, yk + 0.6), (xd, 2.37)], color=GATE["o"])
    label(ax, xd + 0.1, 1.85, "$y_{t-1}$", size=size, ha="left")
    line(ax, [(xd + 0.4, 2.6), (7.2, 2.6)], color=GATE["o"])
    label(ax, 7.15, 2.9, "$h_t$", size=size, ha="right")
    label(ax, xd - 0.45, yc + 0.3, "$c^{att}_t$", size=size)
    save(fig, "attention", out)


def bidirectional(out):
    T = 4
    fig, ax = card(8.4, 4.3)
    xs = [2.2 + 1.6 * k for k in range(T)]
    yx, yf, yb, yo = 0.55, 1.55, 2.55, 3.6
    label(ax, 0.25, yf, "forward\nlayer", ha="left", size=10, color=GATE["i"])
    label(ax, 0.25, yb, "backward\nlayer", ha="left", size=10, color=GATE["o"])
    for k, x in enumerate(xs):
        t = k + 1
        op(ax, x, yx, f"$x_{t}$", r=0.22, size=11)
        box(ax, x - 0.3, yf, rf"$\overrightarrow{{h}}_{t}$", GATE["i"], w=0.62)
        box(ax, x + 0.3, yb, rf"$\overleftarrow{{h}}_{t}$", GATE["o"], w=0.62)
        line(ax, [(x, yx + 0.22), (x, yx + 0.4), (x - 0.3, yx + 0.4),
                  (x - 0.3, yf - 0.2)])
        line(ax, [(x, yx + 0.4), (x + 0.42, yx + 0.4), (x + 0.42, yb - 0.2)])
        box(ax, x, yo, rf"$[\overrightarrow{{h}}_{t};\overleftarrow{{h}}_{t}]$",
            INK, w=1.1, h=0.42, fill=False, size=11)
        line(ax, [(x - 0.3, yf + 0.2), (x - 0.3, yo - 0.21)])
        line(ax, [(x + 0.3, yb + 0.2), (x + 0.3, yo - 0.21)])
        if k:
            line(ax, [(xs[k - 1] + 0.01, yf), (x - 0.61, yf)],
                 color=GATE["i"])
            line(ax, [(x - 0.01, yb), (xs[k - 1] + 0.61, yb)],
                 color=GATE["o"])
    label(ax, xs[-1] + 0.72, yo, "output\n$(T, B, 2H)$", ha="left", size=9.5)
    save(fig, "bidirectional", out)


def stacked(out):
    T = 4
    fig, ax = card(8.9, 4.3)
    xs = [2.0 + 1.5 * k for k in range(T)]
    ys = {"x": 0.55, 1: 1.6, 2: 2.7, "y": 3.7}
    label(ax, 0.25, ys[1], "layer 1", ha="left", size=10)
    label(ax, 0.25, ys[2], "layer 2", ha="left", size=10)
    for k, x in enumerate(xs):
        t = k + 1
        op(ax, x, ys["x"], f"$x_{t}$", r=0.22, size=11)
        box(ax, x, ys[1], rf"$h^{{(1)}}_{t}$", GATE["g"], w=0.66)
        box(ax, x, ys[2], rf"$h^{{(2)}}_{t}$", GATE["o"], w=0.66)
        op(ax, x, ys["y"], f"$y_{t}$", r=0.22, size=11)
        line(ax, [(x, ys["x"] + 0.22), (x, ys[1] - 0.2)])
        line(ax, [(x, ys[1] + 0.2), (x, ys[2] - 0.2)])
        line(ax, [(x, ys[2] + 0.2), (x, ys["y"] - 0.22)])
        for layer in (1, 2):
            prev = xs[k - 1] + 0.33 if k else 1.25
            line(ax, [(prev, ys[layer]), (x - 0.33, ys[layer])])
    label(ax, 1.15, ys[1] + 0.22, r"$h^{(1)}_0$", size=10)
    label(ax, 1.15, ys[2] + 0.22, r"$h^{(2)}_0$", size=10)
    label(ax, xs[-1] + 0.5, (ys[1] + ys[2]) / 2,
          "layer 2 reads\nlayer 1's outputs", ha="left", size=9.5,
          color="#57606a")
    save(fig, "stacked", out)


def encoder_decoder(out):
    fig, ax = card(9.6, 3.9)
    enc = [0.9 + 1.1 * k for k in range(4)]
    dec = [6.0 + 1.15 * k for k in range(3)]
    yin, yh, yout = 0.6, 1.75, 2.95
    label(ax, 2.55, 3.5, "encoder", size=11, color=GATE["g"], weight="bold")
    label(ax, 7.15, 3.5, "decoder", size=11, color=GATE["o"], weight="bold")
    for k, x in enumerate(enc):
        op(ax, x, yin, f"$x_{k + 1}$", r=0.22, size=11)
        box(ax, x, yh, "", GATE["g"], w=0.6)
        line(ax, [(x, yin + 0.22), (x, yh - 0.2)])
        if k:
            line(ax, [(enc[k - 1] + 0.3, yh), (x - 0.3, yh)])
    # the context: the encoder's last state, a fixed-length vector
    box(ax, 5.0, yh, "$v$", GATE["r"], w=0.5)
    line(ax, [(enc[-1] + 0.3, yh), (4.75, yh)])
    line(ax, [(5.25, yh), (dec[0] - 0.3, yh)])
    label(ax, 5.0, yh - 0.55, "context vector:\nfixed length,\nthe bottleneck",
          size=9, color=GATE["r"], va="top")
    words = [r"$\langle$bos$\rangle$", "$y_1$", "$y_2$"]
    outs = ["$y_1$", "$y_2$", r"$\langle$eos$\rangle$"]
    for k, x in enumerate(dec):
        op(ax, x, yin, words[k], r=0.3 if k == 0 else 0.22, size=10)
        box(ax, x, yh, "", GATE["o"], w=0.6)
        op(ax, x, yout, outs[k], r=0.3 if k == 2 else 0.22, size=10)
        line(ax, [(x, yin + (0.3 if k == 0 else 0.22)), (x, yh - 0.2)])
        line(ax, [(x, yh + 0.2), (x, yout - (0.3 if k == 2 else 0.22))])
        if k:
            line(ax, [(dec[k - 1] + 0.3, yh), (x - 0.3, yh)])
            # the previous output is the next input
            line(ax, [(dec[k - 1] + 0.22, yout), (dec[k - 1] + 0.5, yout),
                      (dec[k - 1] + 0.5, yin), (x - 0.22, yin)],
                 color="#8c959f", ls="--", lw=1.2)
    label(ax, 9.3, 0.15 + 0.05, "feeds back its previous output", ha="right",
          size=9, color="#57606a", va="bottom")
    save(fig, "encoder_decoder", out)


# ----------------------------------------------------------- the registry

def _lstm(name):
    return lambda out: lstm_cell_diagram(out, name)


def _gru(name):
    return lambda out: gru_cell_diagram(out, name)


FIGURES = {"rnn_cell": rnn_cell}
# checked for MIN_PX when saved (see the module's docstring)
LEGIBLE = {"rnn_cell", "lstm_chain", "attention", "tbptt_chunks",
           *LSTM_STEPS, *GRU_STEPS}
FIGURES.update({name: _lstm(name) for name in LSTM_STEPS})
FIGURES.update({name: _gru(name) for name in GRU_STEPS})
FIGURES.update({"bptt": bptt, "tbptt": tbptt, "tbptt_chunks": tbptt_chunks,
                "lstm_chain": lstm_chain, "attention": attention,
                "bidirectional": bidirectional,
                "stacked": stacked, "encoder_decoder": encoder_decoder})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIGURES_DIR,
                        help="folder for the SVG files (default: book/figures)")
    parser.add_argument("--only", nargs="*", choices=sorted(FIGURES),
                        help="draw only these figures")
    args = parser.parse_args(argv)
    names = args.only or sorted(FIGURES)
    for name in names:
        FIGURES[name](args.out)
        print(f"{args.out / (name + '.svg')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
