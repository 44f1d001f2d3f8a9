"""Tests for the BM25 tokeniser and `BM25Index` on English, Chinese and mixed text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared.errors import IndexMismatchError, RetrievalError
from shared.retrieval import BM25Index
from shared.retrieval._tokenize import tokenize

DOCUMENTS = {
    1: "How to reset your online banking password",
    2: "Your new card arrives within 5 to 7 working days",
    3: "Report a lost or stolen card and block it",
    4: "Fees for international transfers",
    11: "如何重置网上银行密码",
    12: "银行卡丢失或被盗，请立即挂失",
    13: "国际转账手续费说明",
    21: "iPhone 15 退款 refund policy",
}


def _index() -> BM25Index:
    index = BM25Index()
    index.add(list(DOCUMENTS), list(DOCUMENTS.values()))
    return index


# Tokeniser


def test_tokenize_english_lowercases_and_drops_stopwords() -> None:
    """Latin words and digits become lower-case terms; stop words are dropped."""
    assert tokenize("The Card is NOT working in 2024!") == ["card", "working", "2024"]


def test_tokenize_chinese_gives_characters_and_bigrams() -> None:
    """Each CJK character is a term, followed by every adjacent pair."""
    assert tokenize("银行卡") == ["银", "行", "卡", "银行", "行卡"]


def test_tokenize_mixed_text_splits_scripts() -> None:
    """Latin runs and CJK runs are split where the script changes."""
    assert tokenize("我的APP登录") == ["我", "的", "我的", "app", "登", "录", "登录"]


def test_tokenize_folds_full_width_forms() -> None:
    """Full-width Latin letters and digits match their ASCII forms."""
    assert tokenize("ＡＰＰ１２") == tokenize("app12") == ["app12"]


def test_tokenize_punctuation_only_is_empty() -> None:
    """Text without letters, digits or CJK characters has no terms."""
    assert tokenize("?!，。 ...") == []


# Search


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("forgot my password", 1),
        ("stolen card", 3),
        ("international transfer fees", 4),
        ("我的银行卡被盗了", 12),
        ("转账手续费", 13),
        ("网上银行密码", 11),
        ("iphone 退款", 21),
        ("refund 退款", 21),
    ],
)
def test_search_finds_matching_document(query: str, expected: int) -> None:
    """English, Chinese and mixed queries rank the matching document first."""
    hits = _index().search(query, 3)

    assert hits[0][0] == expected
    assert hits[0][1] > 0


def test_search_scores_descend_and_respect_k() -> None:
    """Hits are sorted by descending score and cut at `k`."""
    hits = _index().search("card 银行", 2)

    assert len(hits) == 2
    assert hits[0][1] >= hits[1][1]


def test_search_returns_only_matching_documents() -> None:
    """Documents that share no term with the query are not returned, even with a large k."""
    hits = _index().search("password", 50)

    assert [document_id for document_id, _ in hits] == [1]


@pytest.mark.parametrize("query", ["", "   ", "the and of", "？！", "zebra"])
def test_search_without_matching_terms_returns_empty(query: str) -> None:
    """An empty, stop-word-only or unknown-word query returns no hits, not an error."""
    assert _index().search(query, 5) == []


def test_search_empty_index_returns_empty() -> None:
    """Searching an index with no documents returns no hits."""
    assert BM25Index().search("card", 5) == []


def test_search_corpus_without_terms_returns_empty() -> None:
    """An index whose documents have no terms at all returns no hits."""
    index = BM25Index()
    index.add([1, 2], ["the", "?!"])

    assert index.search("the card", 5) == []


def test_search_allowed_ids_limits_hits() -> None:
    """With `allowed_ids`, only those documents can be returned."""
    hits = _index().search("card 银行卡", 5, allowed_ids={2, 13})

    assert [document_id for document_id, _ in hits] == [2]


def test_remove_hides_document_from_search() -> None:
    """A removed document is no longer found; the index rebuilds on the next search."""
    index = _index()
    assert index.search("stolen card", 1)[0][0] == 3

    assert index.remove([3, 999]) == 1

    assert 3 not in [document_id for document_id, _ in index.search("stolen card", 10)]
    assert len(index) == len(DOCUMENTS) - 1


def test_add_existing_id_replaces_text() -> None:
    """Re-adding an id replaces its text: the old words no longer match it."""
    index = _index()
    index.search("password", 1)

    index.add([1], ["Change the PIN of your debit card"])

    assert index.search("password", 5) == []
    assert index.search("pin", 5)[0][0] == 1
    assert len(index) == len(DOCUMENTS)


# Save and load


def test_save_load_round_trip(tmp_path: Path) -> None:
    """A loaded index returns the same hits and scores."""
    index = _index()
    expected = index.search("card 银行卡 refund", 5)

    index.save(tmp_path)
    loaded = BM25Index.load(tmp_path)

    assert loaded.search("card 银行卡 refund", 5) == expected
    assert sorted(loaded.ids().tolist()) == sorted(DOCUMENTS)


def test_load_rejects_other_tokenizer_version(tmp_path: Path) -> None:
    """An index tokenised by another tokenizer version must be rebuilt."""
    _index().save(tmp_path)
    path = tmp_path / "bm25.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["tokenizer_version"] = 0
    path.write_text(json.dumps(data), encoding="utf-8")

    with pytest.raises(IndexMismatchError, match="rebuild the index with `reindex`"):
        BM25Index.load(tmp_path, rebuild_command="reindex")


def test_load_missing_file_raises(tmp_path: Path) -> None:
    """A folder without bm25.json is reported as not found."""
    with pytest.raises(RetrievalError, match=r"BM25 index file .* not found"):
        BM25Index.load(tmp_path)


# Input validation


@pytest.mark.parametrize(
    ("ids", "texts", "message"),
    [
        ([1, 2], ["a"], "same length, got 2 ids and 1 texts"),
        ([1], "one text", "must be a list of strings, got str"),
        ([1], [None], r"`texts\[0\]` must be a string"),
        ([-1], ["a"], "must be >= 0"),
    ],
)
def test_add_rejects_invalid_input(ids: object, texts: object, message: str) -> None:
    """Invalid ids or texts raise `RetrievalError` naming the problem."""
    index = BM25Index()

    with pytest.raises(RetrievalError, match=message):
        index.add(ids, texts)  # type: ignore[arg-type]
    assert len(index) == 0


def test_init_rejects_invalid_parameters() -> None:
    """`b` must lie in [0, 1]."""
    with pytest.raises(RetrievalError, match=re.escape("`b` must be between 0 and 1, got 1.5")):
        BM25Index(b=1.5)
