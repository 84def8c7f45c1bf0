"""Regenerate the instructor guide's screenshots of the course hub.

    .venv/bin/python scripts/hub_screenshots.py

Runs the hub's browser test (tests/hub/test_hub_browser.py), which saves a
screenshot at each step when LSTMLIB_HUB_SCREENSHOTS names a folder, then
writes them to book/images/hub-*.png as palette PNGs (a few tens of KB
each). Nothing here is taken by hand: a change to the hub, nbgrader or the
assignment shows in the next run. Screenshots the test no longer takes are
removed.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "book" / "images"
COLOURS = 64


def main():
    with tempfile.TemporaryDirectory(prefix="hub-shots-") as tmp:
        env = dict(os.environ, LSTMLIB_HUB_SCREENSHOTS=tmp)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist",
                               "-p", "no:cacheprovider", "tests/hub/test_hub_browser.py"],
                              cwd=ROOT, env=env)
        if proc.returncode != 0:
            sys.exit(f"the hub's browser test failed (exit {proc.returncode}): "
                     "book/images left as they were")
        shots = sorted(Path(tmp).glob("hub-*.png"))
        if not shots:
            sys.exit("the hub's browser test took no screenshots (was it skipped?)")
        for old in IMAGES.glob("hub-*.png"):
            if old.name not in {s.name for s in shots}:
                old.unlink()
        total = 0
        for shot in shots:
            out = IMAGES / shot.name
            with Image.open(shot) as img:
                img.convert("RGB").quantize(COLOURS).save(out, optimize=True)
            total += out.stat().st_size
            print(f"{out.relative_to(ROOT)}  {out.stat().st_size / 1024:.0f} KB")
        print(f"{len(shots)} screenshots, {total / 1024:.0f} KB in all")


if __name__ == "__main__":
    main()
