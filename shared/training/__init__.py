"""Fine-tuning: sequence classifiers, masked-LM pretraining and causal-LM SFT.

The causal-LM names are imported on first use. Importing
`shared.training.causal_lm` loads transformers' Trainer, peft and datasets,
which took 4.7 s on a 2-core CPU, against 0.2 s for `shared.training.config`,
which the CLI imports at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.training.causal_lm import (
        CausalLmCollator,
        CausalLmLoraOptions,
        CausalLmSftConfig,
        SftExample,
        TrainedCausalLM,
        tokenize_sft_example,
        train_causal_lm,
    )

__all__ = [
    "CausalLmCollator",
    "CausalLmLoraOptions",
    "CausalLmSftConfig",
    "SftExample",
    "TrainedCausalLM",
    "tokenize_sft_example",
    "train_causal_lm",
]

_LAZY_MODULES = dict.fromkeys(__all__, "shared.training.causal_lm")


def __getattr__(name: str) -> Any:
    module_name = _LAZY_MODULES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
