"""Every fine-tuning method trains, saves, reloads identically and reports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from shared.inference import TextClassifier
from shared.training.classifier import TRAINING_CONFIG_FILE, TrainedClassifier
from shared.training.config import METHODS

MAX_LOGIT_DIFFERENCE = 1e-4


def _logits_in_fresh_process(
    model_dirs: dict[str, Path], texts: list[str], out_dir: Path
) -> dict[str, np.ndarray]:
    """Load each folder in a new Python process and return the logits it computes."""
    texts_file = out_dir / "texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        import numpy as np
        from shared.inference import TextClassifier
        folders = json.loads(sys.argv[1])
        texts = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
        for method, folder in folders.items():
            classifier = TextClassifier.from_folder(Path(folder))
            np.save(Path(sys.argv[3]) / f"{method}.npy", classifier.predict_logits(texts))
            Path(sys.argv[3], f"{method}.labels.json").write_text(json.dumps(classifier.labels))
        """
    )
    folders = {method: str(path) for method, path in model_dirs.items()}
    subprocess.run(
        [sys.executable, "-c", script, json.dumps(folders), str(texts_file), str(out_dir)],
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    return {method: np.load(out_dir / f"{method}.npy") for method in model_dirs}


def _in_memory_logits(trained: TrainedClassifier, texts: list[str]) -> np.ndarray:
    classifier = TextClassifier.from_folder(trained.model_dir)
    assert trained.model is not None
    classifier.model = trained.model.to(classifier.device).eval()
    return classifier.predict_logits(texts)


def test_reload_matches_trained_model_for_every_method(
    trained_models: dict[str, TrainedClassifier], probe_texts: list[str], tmp_path: Path
) -> None:
    """A saved folder reloaded in a new process gives the trained model's logits on 200 texts."""
    # Given: one trained model per method, and its logits before saving.
    expected = {
        method: _in_memory_logits(trained, probe_texts)
        for method, trained in trained_models.items()
    }

    # When: each saved folder is loaded in a fresh process.
    reloaded = _logits_in_fresh_process(
        {method: trained.model_dir for method, trained in trained_models.items()},
        probe_texts,
        tmp_path,
    )

    # Then: the logits agree to 1e-4 and the label names survive.
    for method, trained in trained_models.items():
        difference = float(np.abs(expected[method] - reloaded[method]).max())
        assert difference < MAX_LOGIT_DIFFERENCE, f"{method}: max logit difference {difference}"
        labels = json.loads((tmp_path / f"{method}.labels.json").read_text())
        assert labels == list(trained.label2id), method


def test_every_method_is_covered(trained_models: dict[str, TrainedClassifier]) -> None:
    """The session fixture trains each method the CLI offers."""
    assert sorted(trained_models) == sorted(METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_method_beats_chance_on_subset(
    trained_models: dict[str, TrainedClassifier], method: str
) -> None:
    """Even one tiny epoch puts every method well above chance (0.2) on five intents."""
    report = trained_models[method].test_report
    assert report is not None
    assert report.accuracy > 0.5, f"{method}: test accuracy {report.accuracy:.3f}"


@pytest.mark.parametrize("method", METHODS)
def test_folder_has_only_safetensors_weights(
    trained_models: dict[str, TrainedClassifier], method: str
) -> None:
    """Saved folders hold safetensors weights and no pickle files."""
    folder = trained_models[method].model_dir
    assert list(folder.rglob("*.safetensors")), method
    pickles = [
        path.name for path in folder.rglob("*") if path.suffix in {".bin", ".pt", ".pkl", ".pth"}
    ]
    assert pickles == [], method


@pytest.mark.parametrize("method", METHODS)
def test_run_writes_report_and_resolved_config(
    trained_models: dict[str, TrainedClassifier], method: str
) -> None:
    """Each run leaves report.json, report.md, both plots and the resolved config."""
    trained = trained_models[method]
    for name in ("report.json", "report.md", "confusion_matrix.png", "training_curves.png"):
        assert (trained.report_dir / name).is_file(), f"{method}: {name} missing"
    resolved = json.loads((trained.model_dir / TRAINING_CONFIG_FILE).read_text())
    assert resolved["config"]["method"] == method
    assert resolved["data"]["fingerprint"] == trained.data_fingerprint


def test_lora_head_is_restored_not_reinitialised(
    trained_models: dict[str, TrainedClassifier],
) -> None:
    """The saved LoRA model carries the trained head, not the randomly initialised one."""
    trained = trained_models["lora"]
    assert trained.model is not None
    wrapper = trained.model.base_model.model.classifier
    trained_weight = wrapper.modules_to_save["default"].weight.detach().cpu()
    original_weight = wrapper.original_module.weight.detach().cpu()
    saved = load_file(str(trained.model_dir / "model.safetensors"))
    assert torch.equal(saved["classifier.weight"], trained_weight)
    assert not torch.equal(saved["classifier.weight"], original_weight)


def test_adalora_reallocates_rank_budget(trained_models: dict[str, TrainedClassifier]) -> None:
    """AdaLoRA prunes some matrices below their initial rank during training."""
    trained = trained_models["adalora"]
    assert trained.model is not None
    rank_pattern = trained.model.peft_config["default"].rank_pattern
    assert rank_pattern, "update_and_allocate never ran: no rank pattern recorded"
    ranks = [int(np.asarray(mask).sum()) for mask in rank_pattern.values()]
    assert min(ranks) < 6, f"no matrix was pruned below init_r: {ranks}"
    assert len(set(ranks)) > 1, f"the budget was not reallocated unevenly: {ranks}"


def test_prefix_model_keeps_adapter_folder(trained_models: dict[str, TrainedClassifier]) -> None:
    """Prefix tuning cannot be merged, so its prefixes are saved beside the base weights."""
    folder = trained_models["prefix"].model_dir
    assert (folder / "adapter" / "adapter_config.json").is_file()
    assert list((folder / "adapter").glob("*.safetensors"))


def test_oos_threshold_chosen_on_dev_and_stored(
    trained_models: dict[str, TrainedClassifier],
) -> None:
    """The out-of-scope threshold comes from the dev split and is served with the model."""
    trained = trained_models["head"]
    assert trained.oos_threshold is not None
    assert 0.0 < trained.oos_threshold < 1.0
    classifier = TextClassifier.from_folder(trained.model_dir)
    assert classifier.oos_threshold == pytest.approx(trained.oos_threshold)
