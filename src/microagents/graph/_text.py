"""Text tools for workloads bigger than one call: normalise, estimate tokens, chunk, pack.

`text.normalize` makes trivially different copies of a post identical, so that the response
cache answers them; `text.chunk` splits a long document by tokens on paragraph and sentence
boundaries, with overlap; `text.pack` groups summaries into as few calls as fit, which is one
level of a hierarchical reduce. They are built-in tools (see `_builtin_tools.py`), so any
workflow can use them as nodes.

Token counts here are a local estimate: tools run below the model layer and cannot call the
API. The estimate errs high (see `CHARS_PER_TOKEN`), so a chunk sized by it fits the budget
the API would count; `microagents.models.count_tokens` asks the API when a model is at hand.
"""

from __future__ import annotations

import math
import re
import unicodedata

from ._tools import tool

CHARS_PER_TOKEN = 3.5
"""English prose runs near 4 characters a token in Claude's tokenizer, figures, code and other
languages fewer: 3.5 over-counts, so a budget computed with it is not overrun."""

_INVISIBLE = re.compile("[\u00ad\u034f\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACE = re.compile(r"\s+")
_STRETCHED = re.compile(r"(.)\1{3,}")
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9À-Ý])")


def estimate_tokens(text: str) -> int:
    """A conservative local token count of `text` (no network): characters ÷ 3.5, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def normalize_text(text: str, *, casefold: bool = False) -> str:
    """`text` with the differences that carry no meaning removed.

    Unicode compatibility forms folded (full-width letters, ligatures), invisible characters
    dropped (zero-width spaces are a common way to dodge exact-match filters), every run of
    whitespace one space, a character repeated 4+ times cut to 3 (``soooooo`` → ``sooo``),
    and, with `casefold`, case folded.
    """
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    text = _SPACE.sub(" ", text).strip()
    text = _STRETCHED.sub(r"\1\1\1", text)
    return text.casefold() if casefold else text


def _sentences(paragraph: str, max_tokens: int) -> list[str]:
    """A paragraph's sentences; a sentence over the budget, as hard slices."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(paragraph):
        if estimate_tokens(sentence) <= max_tokens:
            pieces.append(sentence)
            continue
        width = int(max_tokens * CHARS_PER_TOKEN)
        pieces.extend(sentence[i : i + width] for i in range(0, len(sentence), width))
    return pieces


def chunk_text(text: str, max_tokens: int, overlap_tokens: int = 0) -> list[str]:
    """Split `text` into chunks of at most `max_tokens` (estimated), in order.

    Chunks end on paragraph boundaries where a paragraph fits, else on sentence boundaries.
    Each chunk after the first opens with the last sentences of the one before, up to
    `overlap_tokens`, so that a fact cut by a boundary is read whole by one of them.
    """
    if max_tokens < 1 or overlap_tokens < 0 or overlap_tokens >= max_tokens:
        raise ValueError("need max_tokens >= 1 and 0 <= overlap_tokens < max_tokens")
    # A unit is a sentence; `breaks` marks the units that end a paragraph.
    units: list[str] = []
    breaks: set[int] = set()
    for paragraph in _PARAGRAPH.split(text.strip()):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        units.extend(_sentences(paragraph, max_tokens - overlap_tokens))
        breaks.add(len(units) - 1)

    chunks: list[str] = []
    start = 0
    while start < len(units):
        end, size = start, 0
        last_break = None
        while end < len(units):
            cost = estimate_tokens(units[end]) + 1
            if size + cost > max_tokens and end > start:
                break
            size += cost
            if end in breaks:
                last_break = end
            end += 1
        # Prefer to end on a paragraph when that keeps the chunk at least half full.
        if end < len(units) and last_break is not None and last_break + 1 > start:
            kept = sum(estimate_tokens(u) + 1 for u in units[start : last_break + 1])
            if kept * 2 >= max_tokens:
                end = last_break + 1
        chunks.append(_join(units[start:end], breaks, start))
        if end >= len(units):
            break
        back, carried = end, 0
        while back - 1 > start and carried + estimate_tokens(units[back - 1]) <= overlap_tokens:
            back -= 1
            carried += estimate_tokens(units[back]) + 1
        start = back
    return chunks


def _join(units: list[str], breaks: set[int], offset: int) -> str:
    parts: list[str] = []
    for i, unit in enumerate(units):
        parts.append(unit)
        if i < len(units) - 1:
            parts.append("\n\n" if offset + i in breaks else " ")
    return "".join(parts)


def pack_texts(texts: list[str], max_tokens: int) -> list[list[str]]:
    """Consecutive groups of `texts`, each within `max_tokens` (estimated), as few as fit.

    The groups are balanced (a last group of one short text would be a wasted call) and keep
    the order. A single text over the budget gets a group of its own.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    sizes = [estimate_tokens(t) + 1 for t in texts]
    total = sum(sizes)
    if not texts:
        return []
    target = math.ceil(total / math.ceil(total / max_tokens))
    groups: list[list[str]] = [[]]
    size = 0
    for text, cost in zip(texts, sizes, strict=True):
        if groups[-1] and (size + cost > max_tokens or size >= target):
            groups.append([])
            size = 0
        groups[-1].append(text)
        size += cost
    return groups


@tool(name="text.normalize")
def normalize(text: str, casefold: bool = False) -> dict[str, str | bool]:
    """Normalise a text so that copies differing only in spacing, invisible characters,
    Unicode forms or stretched letters (and, with casefold, case) become identical.

    Returns the text and whether anything changed.
    """
    normal = normalize_text(text, casefold=casefold)
    return {"text": normal, "changed": normal != text}


@tool(name="text.chunk")
def chunk(text: str, max_tokens: int = 8000, overlap_tokens: int = 200) -> dict[str, object]:
    """Split a long text into chunks of at most max_tokens (a conservative local estimate), on
    paragraph and sentence boundaries, each after the first opening with up to overlap_tokens
    of the one before.

    Returns the chunks in order (index, text, tokens), their count and the text's tokens.
    """
    pieces = chunk_text(text, max_tokens, overlap_tokens)
    return {
        "chunks": [
            {"index": i, "text": piece, "tokens": estimate_tokens(piece)}
            for i, piece in enumerate(pieces)
        ],
        "count": len(pieces),
        "total_tokens": estimate_tokens(text),
    }


@tool(name="text.pack")
def pack(texts: list[str], max_tokens: int = 6000) -> dict[str, object]:
    """Group texts, in order, into as few groups as fit max_tokens each (a local estimate):
    one level of a hierarchical reduce. One group means that everything fits one call.

    Returns the groups, their count and the texts' tokens.
    """
    groups = pack_texts(texts, max_tokens)
    return {
        "groups": groups,
        "count": len(groups),
        "total_tokens": sum(estimate_tokens(t) for t in texts),
    }


TEXT_TOOLS = (normalize, chunk, pack)
