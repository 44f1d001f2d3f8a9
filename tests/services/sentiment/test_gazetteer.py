"""Entity linking: cashtags, tickers, names, Chinese aliases, offsets into the original text."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.sentiment.gazetteer import EntityRecord, Gazetteer, build_gazetteer, read_alias_file
from shared.errors import DataError


@pytest.fixture
def gazetteer() -> Gazetteer:
    return Gazetteer(
        [
            EntityRecord("AMZN", "Amazon", ("Amazon", "Amazon.com", "亚马逊")),
            EntityRecord("GE", "General Electric", ("General Electric", "GE")),
            EntityRecord("600519", "贵州茅台", ("贵州茅台", "茅台", "Kweichow Moutai")),
            EntityRecord("PFOCUS", "Prime Focus", ("Prime Focus Ltd", "Prime Focus", "PFOCUS")),
        ]
    )


def _found(gazetteer: Gazetteer, text: str) -> list[tuple[str, str, str]]:
    matches = gazetteer.find(text)
    for match in matches:
        assert text[match.start : match.end] == match.surface
    return [(m.entity, m.surface, m.kind) for m in matches]


def test_cashtag_with_space_links(gazetteer: Gazetteer) -> None:
    """Pre-tokenised cashtags such as `$ amzn` link in any letter case."""
    assert _found(gazetteer, "rt $ amzn up, $GE down") == [
        ("AMZN", "$ amzn", "cashtag"),
        ("GE", "$GE", "cashtag"),
    ]


def test_unknown_cashtag_is_ignored(gazetteer: Gazetteer) -> None:
    """A cashtag of a symbol the gazetteer lacks links nothing."""
    assert _found(gazetteer, "$ wynn and $lgf") == []


def test_ticker_alias_needs_upper_case(gazetteer: Gazetteer) -> None:
    """`ge` in running text is a word, `GE` is the ticker."""
    assert _found(gazetteer, "we ge there") == []
    assert _found(gazetteer, "GE shares fell") == [("GE", "GE", "ticker")]


def test_name_links_case_insensitively_at_word_boundaries(gazetteer: Gazetteer) -> None:
    """Names link in any case, but not inside a longer word."""
    assert _found(gazetteer, "AMAZON beats; amazonian rain") == [("AMZN", "AMAZON", "name")]


def test_longest_alias_wins(gazetteer: Gazetteer) -> None:
    """Overlapping aliases keep the longest match."""
    assert _found(gazetteer, "Prime Focus Ltd posts loss") == [
        ("PFOCUS", "Prime Focus Ltd", "name")
    ]


def test_chinese_aliases_in_mixed_text(gazetteer: Gazetteer) -> None:
    """Chinese names link without word boundaries, beside English ones, with exact offsets."""
    text = "贵州茅台股价下跌，Amazon 与亚马逊中国上涨"
    assert _found(gazetteer, text) == [
        ("600519", "贵州茅台", "name"),
        ("AMZN", "Amazon", "name"),
        ("AMZN", "亚马逊", "name"),
    ]


def test_given_entity_located_or_kept(gazetteer: Gazetteer) -> None:
    """Entities sent with an item get offsets when the text names them, -1 when not."""
    matches = gazetteer.link_given("Kweichow Moutai rallies", ["600519", "XYZ"])
    assert [(m.entity, m.start, m.kind) for m in matches] == [
        ("XYZ", -1, "given"),
        ("600519", 0, "name"),
    ]


def test_offsets_survive_length_changing_lowercase(gazetteer: Gazetteer) -> None:
    """A character whose lower case is longer (U+0130) does not shift later offsets."""
    text = "İİ Amazon"
    assert _found(gazetteer, text) == [("AMZN", "Amazon", "name")]


def test_alias_file_adds_chinese_names(tmp_path: Path) -> None:
    """A user's alias file adds names and wins a shared alias over the data sets."""
    path = tmp_path / "aliases.csv"
    path.write_text("symbol,name,aliases\n601318,中国平安,中国平安|平安保险\n", encoding="utf-8")
    built = build_gazetteer(data_dir=None, aliases_file=path)
    assert [m.entity for m in built.find("中国平安发布公告")] == ["601318"]
    assert built.name_of("601318") == "中国平安"


def test_alias_file_errors(tmp_path: Path) -> None:
    """A missing file, another encoding or a missing column raise DataError with the fix."""
    with pytest.raises(DataError, match="not found"):
        read_alias_file(tmp_path / "absent.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("symbol,name,aliases\nX,Caf\xe9,\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        read_alias_file(latin)
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,alias\nX,Y\n", encoding="utf-8")
    with pytest.raises(DataError, match="lacks"):
        read_alias_file(bad)


def test_data_set_gazetteer_links_stocknet_and_sentfin(data_dir: Path) -> None:
    """Built from the data sets, the gazetteer links StockNet tickers and SEntFiN names."""
    built = build_gazetteer(data_dir=data_dir)
    assert [m.entity for m in built.find("$ xom and Exxon Mobil")] == ["XOM", "XOM"]
    assert [m.entity for m in built.find("Prime Focus falls")] == ["PFOCUS"]
    assert built.name_of("AMZN") == "Amazon"


def test_sentfin_common_nouns_are_not_linked(data_dir: Path) -> None:
    """SEntFiN's lower-case topic forms ("stocks", "lead", "bank") link nothing."""
    built = build_gazetteer(data_dir=data_dir)
    assert built.find("stocks rally as lead and zinc rise; bank shares fall") == []


def test_empty_text_finds_nothing(gazetteer: Gazetteer) -> None:
    """Empty and whitespace text link nothing."""
    assert gazetteer.find("") == []
    assert gazetteer.find("   ") == []
