"""The text tools behind long documents: chunking by tokens with overlap, and packing."""

from __future__ import annotations

import itertools

from microagents.graph._text import chunk_text, estimate_tokens, pack_texts

DOCUMENT = "\n\n".join(
    " ".join(f"Paragraph {p} sentence {s} says one thing." for s in range(8)) for p in range(40)
)


def test_chunks_fit_the_budget_end_on_boundaries_and_overlap() -> None:
    chunks = chunk_text(DOCUMENT, max_tokens=300, overlap_tokens=40)
    assert all(estimate_tokens(c) <= 300 for c in chunks)
    assert all(c.endswith(".") for c in chunks)  # never cut inside a sentence
    for before, after in itertools.pairwise(chunks):
        first_sentence = after.split(". ", 1)[0] + "."
        assert first_sentence in before  # the overlap: the next chunk repeats a tail sentence
    assert "Paragraph 39 sentence 7" in chunks[-1]


def test_packing_keeps_order_and_balances_groups() -> None:
    texts = [f"summary {i} " + "x" * 390 for i in range(14)]
    groups = pack_texts(texts, max_tokens=600)
    assert [t for g in groups for t in g] == texts
    assert [len(g) for g in groups] == [5, 5, 4]
    assert pack_texts(texts[:3], max_tokens=600) == [texts[:3]]  # fits one call
