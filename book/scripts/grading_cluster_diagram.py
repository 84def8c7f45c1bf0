"""Draw book/images/grading_cluster.svg: a large course's grading path.

    .venv/bin/python book/scripts/grading_cluster_diagram.py

Plain SVG written by hand (boxes, arrows, text): it renders offline, in any
browser, and diffs as text.
"""
from __future__ import annotations

import html
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "images" / "grading_cluster.svg"
W, H = 900, 470

BOXES = {
    # name: (x, y, w, h, fill, title, lines)
    "students": (20, 40, 170, 90, "#e8f1fb", "Students",
                 ["JupyterHub notebooks", "fetch · submit"]),
    "exchange": (250, 40, 200, 90, "#e8f1fb", "Exchange",
                 ["nbgrader exchange folder", "or ngshare (Kubernetes)"]),
    "driver": (250, 200, 200, 110, "#fff4e0", "Driver (trusted)",
               ["python -m lstmlib.grading", "autograde A --scheduler ...", "merges every result"]),
    "scheduler": (520, 200, 150, 110, "#eef7ee", "Dask scheduler",
                  ["tcp://host:8786", "retries lost workers"]),
    "workers": (720, 150, 160, 210, "#eef7ee", "Dask workers",
                ["one sandbox per core", "grade_submission()", "returns plain data", "",
                 "LocalCluster, Slurm", "(dask-jobqueue) or", "Kubernetes"]),
    "gradebook": (250, 370, 200, 80, "#f3ecfa", "Gradebook",
                  ["PostgreSQL (db_url)", "+ job ledger table"]),
    "formgrader": (20, 370, 170, 80, "#f3ecfa", "Formgrader",
                   ["manual grading,", "same database"]),
}

ARROWS = [
    # (from (x, y), to (x, y), label, label position)
    ((190, 70), (250, 70), "submit", (220, 62)),
    ((250, 105), (190, 105), "feedback", (220, 122)),
    ((350, 130), (350, 200), "collect", (385, 170)),
    ((450, 240), (520, 240), "tasks", (485, 232)),
    ((520, 275), (450, 275), "results", (485, 292)),
    ((670, 240), (720, 240), "", None),
    ((720, 275), (670, 275), "", None),
    ((350, 310), (350, 370), "set scores once", (410, 345)),
    ((250, 410), (190, 410), "", None),
    ((300, 200), (300, 130), "release feedback", (240, 170)),
]


def box(x, y, w, h, fill, title, lines):
    out = [f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="{fill}" '
           f'stroke="#4a5568" stroke-width="1.5"/>',
           f'<text x="{x + w / 2}" y="{y + 22}" class="title">{html.escape(title)}</text>']
    for i, line in enumerate(lines):
        out.append(f'<text x="{x + w / 2}" y="{y + 44 + 17 * i}">{html.escape(line)}</text>')
    return out


def arrow(a, b, label, at):
    out = [f'<line x1="{a[0]}" y1="{a[1]}" x2="{b[0]}" y2="{b[1]}" stroke="#2d3748" '
           f'stroke-width="1.6" marker-end="url(#head)"/>']
    if label:
        out.append(f'<text x="{at[0]}" y="{at[1]}" class="label">{html.escape(label)}</text>')
    return out


def svg() -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" '
             f'width="{W}" height="{H}" role="img" aria-labelledby="t d">',
             '<title id="t">Grading a large course</title>',
             '<desc id="d">Students submit through JupyterHub to the exchange; the '
             'instructor\'s driver collects the submissions and sends one task per '
             'submission to a Dask scheduler, whose workers grade each in a sandbox and '
             'return plain results; only the driver writes the scores, once, into the '
             'PostgreSQL gradebook and its job ledger, which the formgrader also uses; '
             'feedback goes back through the exchange.</desc>',
             '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
             'fill="#2d3748"/></marker></defs>',
             '<style>text{font-family:sans-serif;font-size:13px;text-anchor:middle;'
             'fill:#1a202c}.title{font-weight:bold;font-size:14px}'
             '.label{font-size:12px;fill:#2b6cb0}</style>',
             f'<rect width="{W}" height="{H}" fill="white"/>']
    for spec in BOXES.values():
        parts += box(*spec)
    for spec in ARROWS:
        parts += arrow(*spec)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(svg())
    print(OUT)


if __name__ == "__main__":
    main()
