"""Tests of the data-set readers, on the real files and on small files written here."""

from __future__ import annotations

import ast
import csv
import json
import logging
from collections import Counter
from pathlib import Path

import pytest

import pipelines.datasets
from pipelines.datasets import (
    DATASETS,
    load_dataset_splits,
    load_table_splits,
    parse_sentfin_decisions,
    read_banking77,
    read_banking77_categories,
    read_bitext,
    read_fiqa,
    read_phrasebank,
    read_sentfin,
    read_sentfin_entities,
    read_stocknet_texts,
    read_table,
    read_unlabelled_texts,
    resolve_data_dir,
)
from shared.data import LabelledText, text_hash
from shared.errors import DataError, DatasetNotFoundError

# SEntFiN rows whose Decisions value `ast.literal_eval` rejects because an entity name
# contains an apostrophe.
SENTFIN_APOSTROPHE_ROWS = {
    "3615": "Osian's Art Fund",
    "3783": "Moody's",
    "4909": "Dr Reddy's Labs",
    "5014": "Dr. Reddy's",
    "5321": "Moody's",
    "7226": "Britain's FTSE",
    "8167": "Moody's",
    "8202": "Barron's",
    "9624": "China's central bank",
    "9824": "UK's FTSE",
    "10269": "Dr Reddy's Laboratories",
    "10355": "Moody's",
    "10621": "Dr. Reddy's",
}


def _write_csv(path: Path, rows: list[list[str]], *, delimiter: str = ",") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


def test_public_names_of_pipelines_datasets() -> None:
    assert sorted(pipelines.datasets.__all__) == [
        "DATASETS",
        "DatasetSpec",
        "MOVIELENS_FOLDER",
        "PHRASEBANK_AGREEMENTS",
        "TABLE_SUFFIXES",
        "UNLABELLED_SOURCES",
        "get_dataset_spec",
        "label_for_score",
        "load_dataset_splits",
        "load_table_splits",
        "parse_sentfin_decisions",
        "read_banking77",
        "read_banking77_categories",
        "read_bitext",
        "read_fiqa",
        "read_movielens",
        "read_phrasebank",
        "read_sentfin",
        "read_sentfin_entities",
        "read_stocknet_texts",
        "read_table",
        "read_unlabelled_texts",
        "resolve_data_dir",
    ]


# --- data folder ---


def test_resolve_data_dir_uses_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DIPTYCH_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir(tmp_path / ".") == tmp_path


def test_resolve_data_dir_without_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIPTYCH_DATA_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError, match=r"Set DIPTYCH_DATA_DIR .* banking77/"):
        resolve_data_dir(None)


def test_resolve_data_dir_rejects_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"does not exist\. Set DIPTYCH_DATA_DIR"):
        resolve_data_dir(tmp_path / "absent")


def test_reader_reports_missing_set_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="banking77' not found"):
        read_banking77(tmp_path)


# --- Banking77 ---


def test_read_banking77_counts(data_dir: Path) -> None:
    train, test = read_banking77(data_dir)

    assert len(train) == 10_003
    assert len(test) == 3_080
    assert len({example.label for example in train}) == 77
    assert {example.label for example in test} == set(read_banking77_categories(data_dir))
    assert train[0] == LabelledText(text="I am still waiting on my card?", label="card_arrival")


def test_read_banking77_rejects_label_mismatch(tmp_path: Path) -> None:
    folder = tmp_path / "banking77"
    folder.mkdir()
    categories = [f"intent_{index}" for index in range(77)]
    (folder / "categories.json").write_text(json.dumps(categories), encoding="utf-8")
    rows = [["text", "category"], ["where is my card", "intent_0"]]
    _write_csv(folder / "train.csv", rows)
    _write_csv(folder / "test.csv", rows)

    with pytest.raises(DataError, match=r"do not match categories\.json: 0 unknown .* 76 missing"):
        read_banking77(tmp_path)


def test_load_banking77_splits_keep_official_test(data_dir: Path) -> None:
    splits = load_dataset_splits("banking77", data_dir=data_dir, test_fraction=0.3)
    _, official_test = read_banking77(data_dir)
    test_hashes = {text_hash(example.text) for example in splits.test}

    assert splits.test == official_test
    assert len(splits.labels) == 77
    # Seven train texts also occur in test.csv and are dropped.
    assert len(splits.train) + len(splits.dev) == 10_003 - 7
    assert not test_hashes & {text_hash(example.text) for example in splits.train + splits.dev}
    assert len({example.label for example in splits.dev}) == 77


# --- Bitext ---


def test_read_bitext_counts(data_dir: Path) -> None:
    examples = read_bitext(data_dir)
    categories = Counter(example.meta["category"] for example in examples)

    assert len(examples) == 4_514
    assert len({example.label for example in examples}) == 27
    assert len(categories) == 11
    assert categories["ACCOUNT"] == 1_041
    assert all(example.meta["response"].strip() for example in examples)
    assert examples[0].text == "how can I cancel purchase 113542617735902?"
    assert examples[0].label == "cancel_order"


# --- Financial PhraseBank ---


@pytest.mark.parametrize(
    ("agreement", "counts"),
    [
        ("50", {"positive": 1_363, "neutral": 2_879, "negative": 604}),
        ("66", {"positive": 1_168, "neutral": 2_535, "negative": 514}),
        ("75", {"positive": 887, "neutral": 2_146, "negative": 420}),
        ("All", {"positive": 570, "neutral": 1_391, "negative": 303}),
    ],
)
def test_read_phrasebank_counts(data_dir: Path, agreement: str, counts: dict[str, int]) -> None:
    examples = read_phrasebank(data_dir, agreement)

    assert Counter(example.label for example in examples) == counts
    assert not any(example.text.endswith(("\r", " ")) for example in examples)


def test_read_phrasebank_splits_on_last_at_sign(tmp_path: Path) -> None:
    # The release files have no sentence with '@', so this file checks the parser.
    folder = tmp_path / "financial-phrasebank"
    folder.mkdir()
    lines = [
        "Contact investor@example.com for the report .@neutral",
        "Caf\xe9 chain profit rose 5 % .@positive",
        "",
        "Shares fell @ EUR 2 .@negative",
    ]
    (folder / "Sentences_50Agree.txt").write_bytes("\r\n".join(lines).encode("latin-1"))

    examples = read_phrasebank(tmp_path)

    assert [example.label for example in examples] == ["neutral", "positive", "negative"]
    assert examples[0].text == "Contact investor@example.com for the report ."
    assert examples[1].text == "Café chain profit rose 5 % ."
    assert examples[2].text == "Shares fell @ EUR 2 ."


def test_read_phrasebank_rejects_line_without_label(tmp_path: Path) -> None:
    folder = tmp_path / "financial-phrasebank"
    folder.mkdir()
    (folder / "Sentences_AllAgree.txt").write_bytes(b"Good .@positive\r\nNo label here\r\n")

    with pytest.raises(DataError, match="line 2 must end with '@positive'"):
        read_phrasebank(tmp_path, agreement="All")


def test_read_phrasebank_rejects_unknown_agreement(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"`agreement` must be one of .* got '90'"):
        read_phrasebank(tmp_path, agreement="90")


# --- SEntFiN ---


@pytest.fixture(scope="module")
def sentfin_examples(data_dir: Path) -> list[LabelledText]:
    return read_sentfin(data_dir)


def test_read_sentfin_counts(sentfin_examples: list[LabelledText]) -> None:
    labels = Counter(example.label for example in sentfin_examples)
    headlines = {example.meta["headline_id"] for example in sentfin_examples}

    assert len(sentfin_examples) == 14_405
    assert len(headlines) == 10_753
    assert labels == {"positive": 5_074, "neutral": 5_517, "negative": 3_814}


def test_read_sentfin_keeps_apostrophe_rows(sentfin_examples: list[LabelledText]) -> None:
    entities: dict[str, set[str]] = {}
    for example in sentfin_examples:
        entities.setdefault(example.meta["headline_id"], set()).add(example.meta["entity"])

    for headline_id, entity in SENTFIN_APOSTROPHE_ROWS.items():
        assert entity in entities[headline_id], headline_id
    # This row quotes the key with double quotes: "Dr Reddy's".
    assert "Dr Reddy's" in entities["5114"]
    assert len(entities["5114"]) == 6


def test_parse_sentfin_decisions_matches_literal_eval(data_dir: Path) -> None:
    path = data_dir / "sentfin" / "SEntFiN.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))

    unparsable = 0
    for row in rows:
        try:
            expected = ast.literal_eval(row["Decisions"])
        except SyntaxError:
            unparsable += 1
            continue
        assert parse_sentfin_decisions(row["Decisions"]) == list(expected.items()), row["S No."]
    assert unparsable == len(SENTFIN_APOSTROPHE_ROWS)


def test_parse_sentfin_decisions_rejects_unknown_label() -> None:
    assert parse_sentfin_decisions("{'Osian's Art Fund': 'neutral', 'RBI': 'positive'}") == [
        ("Osian's Art Fund", "neutral"),
        ("RBI", "positive"),
    ]
    assert parse_sentfin_decisions("{}") == []
    with pytest.raises(DataError, match="Cannot parse the Decisions value"):
        parse_sentfin_decisions("{'Sebi': 'bullish'}")


def test_read_sentfin_entities(data_dir: Path) -> None:
    entities = read_sentfin_entities(data_dir)

    assert len(entities) == 1_010
    assert entities[1] == ("PFOCUS", ["Prime Focus Ltd", "Prime Focus", "PFOCUS"])
    assert all(symbol and forms for symbol, forms in entities)


# --- FiQA ---


def test_read_fiqa_counts(data_dir: Path) -> None:
    examples = read_fiqa(data_dir)
    sources = Counter(example.meta["source"] for example in examples)

    assert sources == {"headline": 498, "post": 675}
    assert Counter(example.label for example in examples) == {
        "positive": 719,
        "negative": 364,
        "neutral": 90,
    }
    assert examples[0].meta["target"] == "Royal Mail"
    assert examples[0].meta["score"] == "-0.374"


def test_read_fiqa_neutral_band(data_dir: Path) -> None:
    wide = read_fiqa(data_dir, neutral_band=0.3)
    neutral = [example for example in wide if example.label == "neutral"]

    assert len(neutral) > 90
    assert all(abs(float(example.meta["score"])) < 0.3 for example in neutral)
    with pytest.raises(ValueError, match="`neutral_band`"):
        read_fiqa(data_dir, neutral_band=1.5)


# --- StockNet and unlabelled text ---


def test_read_stocknet_texts(data_dir: Path) -> None:
    texts = read_stocknet_texts(data_dir)
    assert len(texts) == 37_815


def test_read_unlabelled_texts_financial(data_dir: Path) -> None:
    texts = read_unlabelled_texts("financial", data_dir=data_dir)
    hashes = [text_hash(text) for text in texts]

    assert len(hashes) == len(set(hashes))
    assert len(texts) == 43_096


def test_read_unlabelled_texts_excludes_test_texts(data_dir: Path) -> None:
    _, test = read_banking77(data_dir)
    full = read_unlabelled_texts("support", data_dir=data_dir)
    excluded = read_unlabelled_texts(
        "support", data_dir=data_dir, exclude=[example.text for example in test]
    )
    test_hashes = {text_hash(example.text) for example in test}

    assert len(full) == 18_959
    assert not test_hashes & {text_hash(text) for text in excluded}
    assert len(excluded) < len(full)


def test_read_unlabelled_texts_selects_sources(data_dir: Path) -> None:
    texts = read_unlabelled_texts("financial", data_dir=data_dir, sources=["fiqa"])
    assert len(texts) == 436 + 675
    with pytest.raises(DataError, match="`sources` must be a non-empty subset"):
        read_unlabelled_texts("financial", data_dir=data_dir, sources=["bitext"])


def test_read_unlabelled_texts_rejects_unknown_domain(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'financial', 'support'"):
        read_unlabelled_texts("legal", data_dir=tmp_path)


# --- registry ---


@pytest.mark.parametrize("name", ["bitext", "phrasebank", "sentfin", "fiqa"])
def test_load_dataset_splits_carves_test(data_dir: Path, name: str) -> None:
    splits = load_dataset_splits(name, data_dir=data_dir, seed=5)
    counts = splits.summary()
    total = sum(counts.values())

    assert counts["test"] == pytest.approx(total * 0.1, rel=0.15)
    assert counts["dev"] == pytest.approx(total * 0.1, rel=0.15)
    assert (
        splits.fingerprint() == load_dataset_splits(name, data_dir=data_dir, seed=5).fingerprint()
    )


def test_load_dataset_splits_passes_options(data_dir: Path) -> None:
    splits = load_dataset_splits("phrasebank", data_dir=data_dir, agreement="All")
    assert sum(splits.summary().values()) == 2_264
    with pytest.raises(TypeError, match="does not accept the options \\['agreement'\\]"):
        load_dataset_splits("bitext", data_dir=data_dir, agreement="All")


def test_load_dataset_splits_rejects_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'banking77', 'bitext', 'phrasebank', 'sentfin', 'fiqa'"):
        load_dataset_splits("imdb", data_dir=tmp_path)
    assert sorted(DATASETS) == ["banking77", "bitext", "fiqa", "phrasebank", "sentfin"]


def test_load_dataset_splits_reads_setting(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIPTYCH_DATA_DIR", str(data_dir))
    splits = load_dataset_splits("fiqa")
    assert sum(splits.summary().values()) == 1_173


# --- generic tables ---


def test_read_table_csv_with_chinese_text(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "tickets.csv",
        [
            ["id", "body", "intent"],
            ["1", "我的卡还没到，怎么办？", "card_arrival"],
            ["2", "How do I top up 我的 account?", " top_up "],
            ["3", "Line one\nline two", "other"],
        ],
    )
    examples = read_table(path, text_column="body", label_column="intent")

    assert examples == [
        LabelledText(text="我的卡还没到，怎么办？", label="card_arrival"),
        LabelledText(text="How do I top up 我的 account?", label="top_up"),
        LabelledText(text="Line one\nline two", label="other"),
    ]


def test_read_table_tsv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_bytes("text\tlabel\r\nhello, world\tgreeting\r\n".encode("utf-8-sig"))

    examples = read_table(path, text_column="text", label_column="label")

    assert examples == [LabelledText(text="hello, world", label="greeting")]


def test_read_table_skips_empty_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write_csv(
        tmp_path / "data.csv", [["text", "label"], ["  ", "a"], ["", "b"], ["kept", "c"]]
    )
    caplog.set_level(logging.INFO, logger="pipelines.datasets.table")

    examples = read_table(path, text_column="text", label_column="label")

    assert examples == [LabelledText(text="kept", label="c")]
    assert any("skipped 2 rows with empty text" in message for message in caplog.messages)


def test_read_table_missing_column(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "data.csv", [["sentence", "label"], ["hi", "a"]])

    with pytest.raises(DataError, match="no column 'text'; its columns are 'sentence', 'label'"):
        read_table(path, text_column="text", label_column="label")
    with pytest.raises(DataError, match="--label-column"):
        read_table(path, text_column="sentence", label_column="category")


def test_read_table_rejects_empty_label(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "data.csv", [["text", "label"], ["fine", "a"], ["no label", ""]])
    with pytest.raises(DataError, match="line 3 has the label ''"):
        read_table(path, text_column="text", label_column="label")


def test_read_table_rejects_row_with_extra_fields(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\nunquoted, comma,a\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2 has 3 fields but the header has 2"):
        read_table(path, text_column="text", label_column="label")


def test_read_table_rejects_repeated_column(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "data.csv", [["text", "label", "text"], ["a", "b", "c"]])
    with pytest.raises(DataError, match="repeats a column name"):
        read_table(path, text_column="text", label_column="label")


def test_read_table_rejects_invalid_csv(tmp_path: Path) -> None:
    # The csv module rejects fields longer than its field size limit (131,072 by default).
    path = tmp_path / "data.csv"
    path.write_text(f"text,label\nok,a\n{'x' * 200_000},b\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3 is not valid CSV: field larger than field limit"):
        read_table(path, text_column="text", label_column="label")


def test_read_table_jsonl(tmp_path: Path) -> None:
    lines = [
        {"text": "你好，我想退款", "label": "refund"},
        {"text": None, "label": "refund"},
        {"text": "rate is 5", "label": 3, "extra": [1, 2]},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text(
        "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n\n",
        encoding="utf-8",
    )

    examples = read_table(path, text_column="text", label_column="label")

    assert examples == [
        LabelledText(text="你好，我想退款", label="refund"),
        LabelledText(text="rate is 5", label="3"),
    ]


def test_read_table_jsonl_keeps_line_separators_in_text(tmp_path: Path) -> None:
    path = tmp_path / "data.json-lines"
    text = "first\u2028second\x85third"
    path.write_text(json.dumps({"t": text, "l": "x"}, ensure_ascii=False), encoding="utf-8")

    assert read_table(path, text_column="t", label_column="l") == [LabelledText(text, "x")]


def test_read_table_malformed_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{"text": "broken", \n', encoding="utf-8")

    with pytest.raises(DataError, match=r"data\.jsonl' line 2 is not valid JSON"):
        read_table(path, text_column="text", label_column="label")


def test_read_table_jsonl_line_not_object(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('["text", "label"]\n', encoding="utf-8")

    with pytest.raises(DataError, match="line 1 contains a JSON list, not an object"):
        read_table(path, text_column="text", label_column="label")


def test_read_table_jsonl_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{"body": "x", "label": "b"}\n', encoding="utf-8")

    with pytest.raises(DataError, match=r"its columns are 'body', 'label'\. Line 2 lacks it"):
        read_table(path, text_column="text", label_column="label")


def test_read_table_rejects_invalid_encoding(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes("text,label\nCaf\xe9,a\n".encode("latin-1"))

    with pytest.raises(DataError, match="is not valid utf-8 text"):
        read_table(path, text_column="text", label_column="label")
    examples = read_table(path, text_column="text", label_column="label", encoding="latin-1")
    assert examples == [LabelledText(text="Café", label="a")]


def test_read_table_rejects_missing_file_and_suffix(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"absent\.csv' not found"):
        read_table(tmp_path / "absent.csv", text_column="text", label_column="label")
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"suffix '\.xlsx' is not supported"):
        read_table(path, text_column="text", label_column="label")


def test_load_table_splits_with_test_file(tmp_path: Path) -> None:
    rows = [["text", "label"]] + [[f"text {index}", "ab"[index % 2]] for index in range(100)]
    train_path = _write_csv(tmp_path / "train.csv", rows)
    test_path = _write_csv(
        tmp_path / "test.csv", [["text", "label"], ["TEXT 4", "a"], ["new", "b"]]
    )

    splits = load_table_splits(
        train_path, text_column="text", label_column="label", test_path=test_path
    )

    assert splits.summary() == {"train": 89, "dev": 10, "test": 2}
    assert "text 4" not in {example.text for example in splits.train + splits.dev}
