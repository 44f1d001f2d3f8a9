"""Base models: resolve a spec to a local safetensors folder, converting GGUF once.

See `shared.basemodels.resolve` for the accepted specs.
"""

from shared.basemodels.resolve import (
    BaseModelKind,
    BaseModelSource,
    ResolvedBaseModel,
    default_drafter,
    default_encoder,
    resolve_base_model,
)

__all__ = [
    "BaseModelKind",
    "BaseModelSource",
    "ResolvedBaseModel",
    "default_drafter",
    "default_encoder",
    "resolve_base_model",
]
