"""Tokenisation for BM25 that works on English, Chinese and mixed text.

Chinese has no spaces between words, and a word segmenter would add a dictionary
dependency. CJK text is therefore indexed as single characters plus overlapping
character bigrams. A two-character word such as 退款 matches as a bigram, and a
query that shares only single characters still matches weakly.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["ENGLISH_STOPWORDS", "TOKENIZER_VERSION", "tokenize"]

# Stored with a saved BM25 index. Bump it whenever `tokenize` changes its output,
# so that `BM25Index.load` rejects indexes tokenised the old way.
TOKENIZER_VERSION = 1

# English function words. Support questions are mostly "how do I ... my ...", and
# in a small knowledge base a rare match on such a word outranks the real topic, so
# this list is longer than Lucene's 33 words. Words that carry meaning in support or
# finance text stay terms: particles ("top up", "log out"), "us" (US dollars) and
# "may" (the month). Contractions split at the apostrophe, so their stems are here too.
_STOPWORD_TEXT = """
    a an the this that these those some any each every all both either neither such
    i me my mine myself we our ours ourselves you your yours yourself yourselves
    he him his himself she her hers herself it its itself they them their theirs themselves
    what which who whom whose when where why how
    am is are was were be been being have has had having do does did doing
    will would shall should can could might must
    and or but nor if then than so because as until while
    of at by for with about against between into through during before after
    above below to from in on under again further once here there just also very too
    no not s t d ll m re ve don didn doesn isn aren wasn weren hasn haven hadn
    wouldn couldn shouldn
"""
ENGLISH_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Han (CJK Unified Ideographs, extension A, compatibility, extensions B-F),
# Japanese kana and Hangul syllables.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ebef"
# Group 1: a run of CJK characters. Group 2: a run of other letters and digits.
_TOKEN_PATTERN = re.compile(rf"([{_CJK}]+)|((?:(?![{_CJK}])[^\W_])+)")


def tokenize(text: str) -> list[str]:
    """Split `text` into BM25 terms.

    Full-width forms are folded to ASCII (NFKC) and case is folded. Runs of letters
    and digits become one term each, except `ENGLISH_STOPWORDS`. Each CJK character
    is a term, and so is each pair of adjacent CJK characters.

    Example:
        ``tokenize("The iPhone 15 退款")`` returns
        ``["iphone", "15", "退", "款", "退款"]``.
    """
    terms: list[str] = []
    normalized = unicodedata.normalize("NFKC", text).casefold()
    for match in _TOKEN_PATTERN.finditer(normalized):
        cjk_run, word = match.groups()
        if word is not None:
            if word not in ENGLISH_STOPWORDS:
                terms.append(word)
            continue
        terms.extend(cjk_run)
        terms.extend(cjk_run[start : start + 2] for start in range(len(cjk_run) - 1))
    return terms
