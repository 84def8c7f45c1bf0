"""The book build after a new benchmark recording: the pages that read the
recordings run again, the others keep their cached run
(scripts/refresh_recorded_pages.py, on a real jupyter-cache)."""

import os
import time

import nbformat
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn

import refresh_recorded_pages


def _cache_page(cache, path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(path.read_text())])
    cache.cache_notebook_bundle(CacheBundleIn(nb, str(path)), check_validity=False)


def test_a_new_recording_drops_the_cached_runs_of_the_pages_that_read_it(tmp_path):
    (tmp_path / "book").mkdir()
    reader = tmp_path / "book" / "perf.md"
    reader.write_text("results = bench.load_results()\n")
    other = tmp_path / "book" / "intro.md"
    other.write_text("print('hello')\n")
    recordings = tmp_path / "lstmlib" / "bench_results"
    recordings.mkdir(parents=True)
    recording = recordings / "cpu-1.json"
    recording.write_text("{}")
    old = time.time() - 3600
    os.utime(recording, (old, old))
    cache = get_cache(str(tmp_path / ".jupyter_cache"))
    for page in (reader, other):
        _cache_page(cache, page)

    assert refresh_recorded_pages.refresh(tmp_path) == []     # nothing newer
    new = time.time() + 3600
    os.utime(recording, (new, new))
    assert refresh_recorded_pages.refresh(tmp_path) == [str(reader)]
    assert [r.uri for r in cache.list_cache_records()] == [str(other)]


def test_without_a_cache_nothing_happens(tmp_path):
    assert refresh_recorded_pages.refresh(tmp_path) == []
    assert not (tmp_path / ".jupyter_cache").exists()
