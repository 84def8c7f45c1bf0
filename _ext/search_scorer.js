// Search ranking for the book (Sphinx's html_search_scorer: this file is
// appended to _static/language_data.js, after searchtools.js defined Scorer).
//
// Sphinx scores each word of a query on its own and stems it, so the query
// "forget gate" ranks "Gated recurrent units" (title word "gated") above the
// section "The forget gate". A query of several words found as a phrase in a
// page or section title is what the reader asked for: it comes first.
if (typeof Scorer !== "undefined") {
  Scorer.score = (result) => {
    const [, title, , , score] = result;
    // The Persian edition folds Arabic and Persian letter forms alike
    // (foldPersian, from its search language in _ext/persian.py).
    const fold = typeof foldPersian === "function" ? foldPersian : (s) => s;
    const query = fold(new URLSearchParams(window.location.search).get("q") || "")
      .toLowerCase().replace(/\s+/g, " ").trim();
    if (query.includes(" ") && title && fold(title).toLowerCase().includes(query)) {
      return score + 2 * Scorer.title;
    }
    return score;
  };
}
