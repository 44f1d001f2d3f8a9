"""Reader for the Financial PhraseBank v1.0 (Malo et al.): sentence-level financial sentiment.

Licence: CC BY-NC-SA 3.0, so the data is for non-commercial use only and must never be
bundled with the product.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.datasets._files import read_text_lines, require_dataset_file
from shared.data import LabelledText
from shared.errors import DataError

__all__ = ["PHRASEBANK_AGREEMENTS", "PHRASEBANK_FOLDER", "PHRASEBANK_LABELS", "read_phrasebank"]

logger = logging.getLogger(__name__)

PHRASEBANK_FOLDER = "financial-phrasebank"
PHRASEBANK_AGREEMENTS: tuple[str, ...] = ("50", "66", "75", "All")
PHRASEBANK_LABELS: frozenset[str] = frozenset({"positive", "neutral", "negative"})
# The release files are ISO-8859-1 with CRLF line ends.
_ENCODING = "latin-1"


def read_phrasebank(data_dir: Path | str, agreement: str = "50") -> list[LabelledText]:
    """Read the sentences of one agreement level with their sentiment label.

    Each line of `financial-phrasebank/Sentences_<agreement>Agree.txt` has the form
    ``sentence@label``. The line is split on its last ``@`` because sentences may
    contain the character. The files are nested: every sentence of a stricter level is
    also in each looser one, so level "50" contains all sentences. Blank lines and lines
    with an empty sentence are skipped.

    Args:
        data_dir: The folder that contains `financial-phrasebank/`.
        agreement: Minimum share of annotators who agreed on the label: "50", "66",
            "75" or "All".

    Returns:
        The examples in file order, labelled positive, neutral or negative.

    Raises:
        ValueError: If `agreement` is not one of the four levels.
        DatasetNotFoundError: If the folder or the file is missing.
        DataError: If a line has no ``@`` or an unknown label.
    """
    if agreement not in PHRASEBANK_AGREEMENTS:
        raise ValueError(
            f"`agreement` must be one of {', '.join(map(repr, PHRASEBANK_AGREEMENTS))}, "
            f"got {agreement!r}."
        )
    path = require_dataset_file(data_dir, PHRASEBANK_FOLDER, f"Sentences_{agreement}Agree.txt")

    examples: list[LabelledText] = []
    skipped = 0
    for line_number, line in enumerate(read_text_lines(path, encoding=_ENCODING), 1):
        if not line.strip():
            continue
        sentence, label = _split_line(line, path=path, line_number=line_number)
        if not sentence:
            skipped += 1
            continue
        examples.append(LabelledText(text=sentence, label=label))

    if skipped:
        logger.info("phrasebank: skipped %d lines with an empty sentence in %s", skipped, path)
    logger.info("phrasebank: read %d sentences at agreement %s", len(examples), agreement)
    return examples


def _split_line(line: str, *, path: Path, line_number: int) -> tuple[str, str]:
    sentence, separator, label = line.rpartition("@")
    label = label.strip()
    if not separator or label not in PHRASEBANK_LABELS:
        raise DataError(
            f"{str(path)!r} line {line_number} must end with '@positive', '@neutral' or "
            f"'@negative', got {line[-40:]!r}; restore the file from the release."
        )
    return sentence.strip(), label
