"""BM25 product search with Lucene-like parameters (k1 0.9, b 0.4), English stop words and a
Snowball stemmer, over the same document text the original Lucene index used: title,
description, first bullet point and the option lists ("size: a, b, and color: c").

Ranking is fully deterministic: all documents are scored and sorted by (-score, catalogue
position), so ties never depend on a top-k implementation."""

from __future__ import annotations

from typing import Any

import bm25s
import numpy as np
import Stemmer

SEARCH_RETURN_N = 50
K1, B = 0.9, 0.4


def document_text(product: dict[str, Any]) -> str:
    """The indexed text of one product (as in the original index builder)."""
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product["options"].items())
    bullets = product["BulletPoints"]
    return " ".join([product["Title"], product["Description"], bullets[0] if bullets else "", option_text]).lower()


class SearchEngine:
    """BM25 over a list of products; `search(query)` returns up to 50 asins, best first."""

    def __init__(self, products: list[dict[str, Any]]) -> None:
        self.asins = [p["asin"] for p in products]
        self._stemmer = Stemmer.Stemmer("english")
        corpus = [document_text(p) for p in products]
        tokens = bm25s.tokenize(corpus, stopwords="en", stemmer=self._stemmer, show_progress=False)
        self._retriever = bm25s.BM25(k1=K1, b=B, method="lucene")
        self._retriever.index(tokens, show_progress=False)
        self._vocab = set(self._retriever.vocab_dict)
        self._cache: dict[str, tuple[str, ...]] = {}

    def clear_cache(self) -> None:
        """Forget cached result lists (benchmarks time the uncached search)."""
        self._cache.clear()

    def _query_tokens(self, query: str) -> list[str]:
        tokenized = bm25s.tokenize([query], stopwords="en", stemmer=self._stemmer,
                                   return_ids=False, show_progress=False)
        return [t for t in tokenized[0] if t in self._vocab]

    def search(self, query: str, k: int = SEARCH_RETURN_N) -> tuple[str, ...]:
        """The top-k asins for `query` (empty when no query word is in the catalogue)."""
        key = f"{k}\x00{query.lower()}"
        if key in self._cache:
            return self._cache[key]
        tokens = self._query_tokens(query)
        if not tokens:
            result: tuple[str, ...] = ()
        else:
            scores = np.asarray(self._retriever.get_scores(tokens), dtype=np.float64)
            order = np.lexsort((np.arange(len(scores)), -scores))
            result = tuple(self.asins[i] for i in order[:k] if scores[i] > 0)
        if len(self._cache) < 20_000:
            self._cache[key] = result
        return result
