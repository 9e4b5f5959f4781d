"""Search terms for Chinese and English alike, on SQLite FTS5 and PostgreSQL.

Chinese has no spaces between words, so text is indexed by characters and overlapping
character pairs (bigrams): 电梯维修 is indexed as 电 梯 维 修 电梯 梯维 维修, and a query
电梯 asks for the bigram 电梯, which finds 电梯维修 but not 电动车…楼梯. Hiragana,
Katakana and Hangul are treated the same way.

Text is NFKC-normalized and case-folded (ＥＬＥＶＡＴＯＲ → elevator), then split into
runs of CJK characters and runs of letters/digits/marks; everything else separates.

Every term is written as one ASCII token of [a-z0-9], so that FTS5's unicode61 tokenizer
and PostgreSQL's 'simple' configuration each keep it as exactly one token, whatever the
server's locale:

- a CJK term (one or two characters) is "z" followed by each code point as five hex
  digits: 电 → z07535, 电梯 → z07535068af;
- a word that is [a-z0-9]+ once accents are taken off Latin letters is itself
  (elevator, 502, café → cafe), unless it could be mistaken for an encoded term (z or w
  followed by groups of five hex digits) or PostgreSQL's parser would split it (digits,
  "e", digits, then a letter: 1e5x is read as 1e5 + x);
- any other word (Cyrillic, Greek, Thai …) is "w" followed by each code point as five
  hex digits: дом → w004340043e0043c.

Words are cut to MAX_WORD_CHARS characters, in the index and in queries alike. The
index column holds `index_terms(...)`; a query ANDs `query_terms(...)` through
`fts5_match` or `pg_tsquery`. With prefix_last, the last term, when it comes from a word,
is matched as a prefix (as-you-type: eleva finds elevator); a word typed as z or w
followed by digits may then over-match encoded terms, which is harmless.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

MAX_QUERY_TERMS = 32
MAX_WORD_CHARS = 40

CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul Compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA960, 0xA97F),  # Hangul Jamo Extended-A
    (0xAC00, 0xD7FF),  # Hangul Syllables, Jamo Extended-B
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x323AF),  # Extensions B–H, Compatibility Supplement
)

TERM = re.compile(r"[a-z0-9]+")
LOOKS_ENCODED = re.compile(r"[zw](?:[0-9a-f]{5})+")
SPLIT_BY_POSTGRES = re.compile(r"[0-9]+e[0-9]+[a-z]")
ENCODED_CJK = re.compile(r"z(?:[0-9a-f]{5}){1,2}")


def _is_cjk(character: str) -> bool:
    code = ord(character)
    return any(low <= code <= high for low, high in CJK_RANGES)


def _is_word_character(character: str) -> bool:
    return unicodedata.category(character)[0] in "LNM"


def _runs(text: str) -> Iterator[tuple[bool, str]]:
    """(is_cjk, run) for each run of CJK characters or of word characters."""
    run: list[str] = []
    run_is_cjk = False
    for character in unicodedata.normalize("NFKC", text).casefold():
        if _is_cjk(character):
            kind = True
        elif _is_word_character(character):
            kind = False
        else:
            kind = None
        if run and kind is not run_is_cjk:
            yield run_is_cjk, "".join(run)
            run = []
        if kind is not None:
            run.append(character)
            run_is_cjk = kind
    if run:
        yield run_is_cjk, "".join(run)


def _hex(characters: str) -> str:
    return "".join(f"{ord(character):05x}" for character in characters)


def _cjk_term(characters: str) -> str:
    return "z" + _hex(characters)


def _without_latin_accents(word: str) -> str:
    bare = "".join(
        character
        for character in unicodedata.normalize("NFKD", word)
        if not unicodedata.combining(character)
    )
    return bare if bare.isascii() else word


def _word_term(word: str) -> str:
    word = _without_latin_accents(word)[:MAX_WORD_CHARS]
    if (
        TERM.fullmatch(word)
        and not LOOKS_ENCODED.fullmatch(word)
        and not SPLIT_BY_POSTGRES.match(word)
    ):
        return word
    return "w" + _hex(word)


def _bigrams(run: str) -> list[str]:
    return [_cjk_term(run[i : i + 2]) for i in range(len(run) - 1)]


def index_terms(*texts: str) -> str:
    terms: list[str] = []
    for text in texts:
        for run_is_cjk, run in _runs(text):
            if run_is_cjk:
                terms += [_cjk_term(character) for character in run]
                terms += _bigrams(run)
            else:
                terms.append(_word_term(run))
    return " ".join(terms)


def query_terms(query: str) -> list[str]:
    terms: list[str] = []
    for run_is_cjk, run in _runs(query):
        if not run_is_cjk:
            terms.append(_word_term(run))
        elif len(run) == 1:
            terms.append(_cjk_term(run))
        else:
            terms += _bigrams(run)
    return list(dict.fromkeys(terms))[:MAX_QUERY_TERMS]


def _checked(terms: list[str]) -> list[str]:
    if not terms:
        raise ValueError("a search needs at least one term")
    for term in terms:
        if not TERM.fullmatch(term):
            raise ValueError(f"not a search term: {term!r}")
    return terms


def _is_prefix(terms: list[str], index: int, prefix_last: bool) -> bool:
    return prefix_last and index == len(terms) - 1 and not ENCODED_CJK.fullmatch(terms[index])


def fts5_match(terms: list[str], *, prefix_last: bool = True) -> str:
    """An FTS5 MATCH expression requiring every term: "a" AND "b"*."""
    _checked(terms)
    return " AND ".join(
        f'"{term}"*' if _is_prefix(terms, i, prefix_last) else f'"{term}"'
        for i, term in enumerate(terms)
    )


def pg_tsquery(terms: list[str], *, prefix_last: bool = True) -> str:
    """For to_tsquery('simple', ...): a & b:*."""
    _checked(terms)
    return " & ".join(
        f"{term}:*" if _is_prefix(terms, i, prefix_last) else term for i, term in enumerate(terms)
    )
