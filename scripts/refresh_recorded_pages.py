"""Before a book build: forget the cached run of every page that reads the
benchmark recordings when a recording is newer than that run.

jupyter-cache keys a page by its code cells only, so after
``python -m lstmlib.bench --record`` the pages that read
``lstmlib/bench_results`` (the performance chapter, the engineering appendix)
would keep showing the previous recording. Their cached runs are dropped
here, and the build executes them again.
"""

import datetime
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("bench.load_results(", "bench.RESULTS_DIR")


def refresh(root=ROOT):
    """Drop the stale cached runs under ``root``; their pages' paths."""
    cache_dir = root / ".jupyter_cache"
    if not cache_dir.exists():
        return []
    from jupyter_cache import get_cache
    recordings = (root / "lstmlib" / "bench_results").glob("*.json")
    newest = max((f.stat().st_mtime for f in recordings), default=0.0)
    newest = datetime.datetime.fromtimestamp(newest, datetime.timezone.utc)
    readers = {str(p) for p in (root / "book").glob("*.md")
               if any(m in p.read_text(encoding="utf-8") for m in MARKERS)}
    cache = get_cache(str(cache_dir))
    dropped = []
    for record in cache.list_cache_records():
        created = record.created.replace(tzinfo=datetime.timezone.utc)
        if record.uri in readers and created < newest:
            cache.remove_cache(record.pk)
            dropped.append(record.uri)
    return dropped


def main():
    for uri in refresh():
        print(f"{Path(uri).name}: a newer benchmark recording, executed again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
