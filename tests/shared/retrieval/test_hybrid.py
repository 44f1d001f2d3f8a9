"""Tests for `HybridIndex` with the bundled encoder on English and Chinese articles."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import IndexMismatchError, RetrievalError
from shared.retrieval import HybridIndex, SearchHit, TextEmbedder

ARTICLES: dict[int, tuple[str, str]] = {
    1: ("How to reset your online banking password", "password"),
    2: ("Your new card is delivered within 5 to 7 working days", "card_delivery"),
    3: ("Track the delivery status of a card you ordered", "card_delivery"),
    4: ("Report a lost or stolen card and block it immediately", "card_lost"),
    5: ("Request a refund for a purchase you did not make", "refund"),
    6: ("Fees for international transfers and currency exchange", "fees"),
    7: ("Change the phone number linked to your account", "account"),
    8: ("Close your account and withdraw the remaining balance", "account"),
    9: ("Set up two-factor authentication in the mobile app", "password"),
    10: ("Why a card payment was declined at a shop", "payment"),
    11: ("Top up your account with Apple Pay or Google Pay", "top_up"),
    12: ("Update your home address", "account"),
    101: ("如何重置网上银行密码", "password"),
    102: ("新卡会在五到七个工作日内寄到", "card_delivery"),
    103: ("银行卡丢失或被盗，请立即挂失", "card_lost"),
    104: ("申请退款：未经授权的交易", "refund"),
    105: ("国际转账手续费说明", "fees"),
    106: ("修改绑定的手机号码", "account"),
    107: ("在手机应用中开启双重验证", "password"),
    108: ("刷卡支付被拒绝的原因", "payment"),
}


def _knowledge_base(embedder: TextEmbedder) -> HybridIndex:
    index = HybridIndex(embedder)
    index.add(
        list(ARTICLES),
        [text for text, _ in ARTICLES.values()],
        [tag for _, tag in ARTICLES.values()],
    )
    return index


@pytest.fixture(scope="module")
def knowledge_base(_session_embedder: TextEmbedder) -> HybridIndex:
    """The 20 articles indexed once per module; tests that change an index build their own."""
    return _knowledge_base(_session_embedder)


# Search


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Paraphrases without a shared content word: found by the dense ranking.
        ("I forgot my login credentials and can't sign in", 1),
        ("how much does it cost to send money abroad", 6),
        ("money back for a charge I don't recognise", 5),
        # Chinese and mixed queries: found mostly through BM25 character bigrams.
        ("转账要收多少钱", 105),
        ("我想申请 refund", 104),
    ],
)
def test_search_finds_paraphrased_article(
    knowledge_base: HybridIndex, query: str, expected: int
) -> None:
    """The article that matches the query's meaning ranks first."""
    hits = knowledge_base.search(query, k=3)

    assert hits[0].id == expected
    assert len(hits) == 3


def test_search_reports_ranks_and_tags(knowledge_base: HybridIndex) -> None:
    """Each hit carries its tag and its rank in the dense and BM25 candidate lists."""
    hit = knowledge_base.search("国际转账手续费", k=1)[0]

    assert hit == SearchHit(
        id=105, score=hit.score, tag="fees", vector_rank=hit.vector_rank, bm25_rank=1
    )
    assert hit.vector_rank is not None
    assert hit.score == pytest.approx(1 / 61 + 1 / (60 + hit.vector_rank))


def test_search_tag_filter_returns_only_tagged(knowledge_base: HybridIndex) -> None:
    """With mode `filter`, every hit has the requested tag, even when others match better."""
    hits = knowledge_base.search("reset my password", k=10, tag="account", tag_mode="filter")

    assert {hit.id for hit in hits} == {7, 8, 12, 106}
    assert {hit.tag for hit in hits} == {"account"}


def test_search_tag_filter_unknown_tag_returns_empty(knowledge_base: HybridIndex) -> None:
    """Filtering on a tag no document has finds nothing."""
    assert knowledge_base.search("password", tag="mortgage", tag_mode="filter") == []


def test_search_tag_boost_multiplies_tagged_scores(knowledge_base: HybridIndex) -> None:
    """With mode `boost`, tagged hits score `tag_boost` times their plain score."""
    plain = {hit.id: hit.score for hit in knowledge_base.search("card", k=20)}

    boosted = knowledge_base.search("card", k=20, tag="card_lost", tag_boost=3.0)

    for hit in boosted:
        factor = 3.0 if hit.tag == "card_lost" else 1.0
        assert hit.score == pytest.approx(plain[hit.id] * factor)
    assert boosted[0].tag == "card_lost"
    assert [hit.score for hit in boosted] == sorted((hit.score for hit in boosted), reverse=True)


def test_search_batch_matches_single_searches(knowledge_base: HybridIndex) -> None:
    """`search_batch` returns what `search` returns for each query, in order."""
    queries = ["my card was stolen", "", "退款", "update address"]

    batch = knowledge_base.search_batch(queries, k=4, tag="account")

    assert batch == [knowledge_base.search(query, k=4, tag="account") for query in queries]
    assert batch[1] == []


@pytest.mark.parametrize("query", ["", "   "])
def test_search_empty_query_returns_empty(knowledge_base: HybridIndex, query: str) -> None:
    """An empty or whitespace-only query finds nothing instead of failing."""
    assert knowledge_base.search(query) == []


def test_search_empty_index_returns_empty(embedder: TextEmbedder) -> None:
    """An index without documents finds nothing."""
    assert HybridIndex(embedder).search("password") == []


def test_fusion_weights_zero_bm25_keeps_dense_order(knowledge_base: HybridIndex) -> None:
    """With BM25 weight 0, the fused order is the dense order."""
    dense_only = HybridIndex(
        knowledge_base.embedder,
        vector_index=knowledge_base.vector_index,
        bm25_index=knowledge_base.bm25_index,
        fusion_weights=(1.0, 0.0),
    )

    hits = dense_only.search("转账要收多少钱", k=5)

    assert [hit.vector_rank for hit in hits] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "`k` must be an integer >= 1"),
        ({"candidates": 0}, "`candidates` must be an integer >= 1"),
        ({"tag_mode": "require"}, "`tag_mode` must be 'boost' or 'filter', got 'require'"),
        ({"tag_boost": 0.0}, "`tag_boost` must be a finite number > 0"),
        ({"tag": 3}, "`tag` must be a string or None"),
    ],
)
def test_search_rejects_invalid_arguments(
    knowledge_base: HybridIndex, kwargs: dict[str, object], message: str
) -> None:
    """Invalid search arguments raise `RetrievalError` naming the argument."""
    with pytest.raises(RetrievalError, match=message):
        knowledge_base.search("password", **kwargs)  # type: ignore[arg-type]


# Updates


def test_remove_hides_article_everywhere(embedder: TextEmbedder) -> None:
    """A removed article is neither found by meaning nor by keyword, and loses its tag."""
    index = _knowledge_base(embedder)

    assert index.remove([1, 101, 999]) == 2

    found = {hit.id for hit in index.search("reset password 密码", k=20)}
    assert not found & {1, 101}
    assert index.tag_of(1) is None
    assert len(index) == len(ARTICLES) - 2
    assert index.search("password", tag="password", tag_mode="filter")[0].id == 9


def test_add_existing_id_replaces_text_and_tag(embedder: TextEmbedder) -> None:
    """Re-adding an id replaces its text and tag in both indexes."""
    index = _knowledge_base(embedder)

    index.add([6], ["Order a replacement debit card"], ["card_delivery"])

    assert index.tag_of(6) == "card_delivery"
    assert 6 not in {hit.id for hit in index.search("international transfer fees", k=3)}
    filtered = index.search("replacement debit card", tag="card_delivery", tag_mode="filter")
    assert filtered[0].id == 6
    assert index.search("fees", tag="fees", tag_mode="filter")[0].id == 105


def test_add_rejects_mismatched_tags(embedder: TextEmbedder) -> None:
    """Tags must come one per text."""
    index = HybridIndex(embedder)

    with pytest.raises(RetrievalError, match="`tags` must have one entry per text \\(2\\)"):
        index.add([1, 2], ["a", "b"], ["only-one"])
    assert len(index) == 0


# Save and load


def test_save_load_round_trip(embedder: TextEmbedder, tmp_path: Path) -> None:
    """A loaded index returns the same hits, tags included."""
    index = _knowledge_base(embedder)
    index.remove([12])
    queries = ["new home address", "银行卡被盗", "card"]
    expected = index.search_batch(queries, k=5, tag="account")

    index.save(tmp_path)
    loaded = HybridIndex.load(tmp_path, embedder)

    assert loaded.search_batch(queries, k=5, tag="account") == expected
    assert loaded.tag_of(7) == "account"
    assert 12 not in loaded
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "bm25.json",
        "index.faiss",
        "manifest.json",
        "tags.json",
    ]


def test_save_load_empty_index(embedder: TextEmbedder, tmp_path: Path) -> None:
    """An index without documents saves and loads, and still finds nothing."""
    HybridIndex(embedder).save(tmp_path)

    loaded = HybridIndex.load(tmp_path, embedder)

    assert len(loaded) == 0
    assert loaded.search("password") == []


def test_load_rejects_other_embedder(embedder: TextEmbedder, tmp_path: Path) -> None:
    """An index built with another embedding model is refused, naming both models."""
    _knowledge_base(embedder).save(tmp_path)
    other = TextEmbedder(embedder.model, name="bge-small-zh@0123456789ab")

    with pytest.raises(IndexMismatchError) as raised:
        HybridIndex.load(tmp_path, other, rebuild_command="diptych support reindex")

    message = str(raised.value)
    assert repr(embedder.name) in message
    assert "'bge-small-zh@0123456789ab'" in message
    assert message.endswith("rebuild the index with `diptych support reindex`.")


def test_init_rejects_vector_index_of_other_embedder(embedder: TextEmbedder) -> None:
    """A vector index built for another model cannot be paired with this embedder."""
    index = _knowledge_base(embedder)
    other = TextEmbedder(embedder.model, name="other@000000000000")

    with pytest.raises(IndexMismatchError, match="rebuild the index"):
        HybridIndex(other, vector_index=index.vector_index)


def test_load_rejects_files_from_different_saves(embedder: TextEmbedder, tmp_path: Path) -> None:
    """A BM25 file with other documents than the vector index is rejected."""
    index = _knowledge_base(embedder)
    index.save(tmp_path)
    index.bm25_index.remove([5])
    index.bm25_index.save(tmp_path)

    with pytest.raises(RetrievalError, match="come from different saves"):
        HybridIndex.load(tmp_path, embedder)
