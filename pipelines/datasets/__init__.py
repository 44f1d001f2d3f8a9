"""Readers of the public data sets and of user files, and a registry of named splits.

Each reader takes the data folder (the setting `DIPTYCH_DATA_DIR`) and reads its set
in place. `load_dataset_splits` turns a registered set into leak-free train, dev and
test splits.
"""

from pipelines.datasets._files import resolve_data_dir
from pipelines.datasets.banking77 import read_banking77, read_banking77_categories
from pipelines.datasets.bitext import read_bitext
from pipelines.datasets.fiqa import label_for_score, read_fiqa
from pipelines.datasets.movielens import MOVIELENS_FOLDER, read_movielens
from pipelines.datasets.phrasebank import PHRASEBANK_AGREEMENTS, read_phrasebank
from pipelines.datasets.registry import (
    DATASETS,
    DatasetSpec,
    get_dataset_spec,
    load_dataset_splits,
    load_table_splits,
)
from pipelines.datasets.sentfin import (
    parse_sentfin_decisions,
    read_sentfin,
    read_sentfin_entities,
)
from pipelines.datasets.stocknet import read_stocknet_texts
from pipelines.datasets.table import TABLE_SUFFIXES, read_table
from pipelines.datasets.unlabelled import UNLABELLED_SOURCES, read_unlabelled_texts

__all__ = [
    "DATASETS",
    "MOVIELENS_FOLDER",
    "PHRASEBANK_AGREEMENTS",
    "TABLE_SUFFIXES",
    "UNLABELLED_SOURCES",
    "DatasetSpec",
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
