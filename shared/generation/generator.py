"""Text generation with a causal LM: load once, generate in batches, or stream.

`TextGenerator` works with any Hugging Face causal-LM folder with safetensors
weights. Tokenizers without a pad token (gpt2's) pad with their EOS token, and
prompts are padded on the left so that every row's new tokens start at the same
position. Generation stops at the EOS token and at the chat template's
end-of-turn token, and only `max_new_tokens` bounds the reply length.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from shared.basemodels import resolve_base_model
from shared.errors import BaseModelError, GenerationError
from shared.generation._streaming import iter_streamed_text
from shared.generation._tokens import (
    encode_prompt,
    ensure_pad_token,
    find_context_length,
    find_stop_token_ids,
)
from shared.generation.prompts import FittedPrompt, TicketTruncation, build_prompt, fit_prompt
from shared.inference.batching import iter_length_buckets
from shared.inference.device import select_device

__all__ = ["Generation", "TextGenerator", "clear_generator_cache", "load_generator"]

logger = logging.getLogger(__name__)

# Settings that only sampling reads, at the values that transformers 5.25 does not
# flag under greedy decoding. Left unset, they would be filled in from the
# model's generation_config.json (a sampling temperature, say), and transformers
# would log a warning on every greedy call.
_GREEDY_SAMPLING_SETTINGS = {"temperature": 1.0, "top_p": 1.0, "top_k": 50, "typical_p": 1.0}
_DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Generation:
    """The reply generated for one prompt.

    Attributes:
        text: The new text, decoded without special tokens and stripped.
        n_new_tokens: Tokens generated, counting the stop token when there is one.
        finished: Whether the reply ended with a stop token (EOS or end of turn)
            rather than at `max_new_tokens`.
        seconds: Wall-clock time of the batch that generated this reply.
    """

    text: str
    n_new_tokens: int
    finished: bool
    seconds: float


class TextGenerator:
    """A causal LM with its tokenizer, set up for batched generation.

    The tokenizer is changed in place: it pads on the left, with its EOS token
    when it has no pad token. Loading and generating never change torch's
    process-wide settings, such as the thread count.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        device: torch.device | str | None = None,
        reference: str | None = None,
    ) -> None:
        try:
            ensure_pad_token(tokenizer)
        except ValueError as exc:
            raise GenerationError(str(exc)) from exc
        tokenizer.padding_side = "left"
        self.device = _select_device(device)
        # Typed loosely: transformers' decorated `to` and `generate` defeat mypy.
        self.model: Any = cast(Any, model).to(self.device).eval()
        self.tokenizer = tokenizer
        self.reference = reference
        generation_eos = getattr(model.generation_config, "eos_token_id", None)
        self.stop_token_ids = find_stop_token_ids(tokenizer, eos_token_id=generation_eos)
        self.context_length = find_context_length(model.config, tokenizer)

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
        reference: str | None = None,
    ) -> TextGenerator:
        """Load a causal LM and its tokenizer from a Hugging Face model folder.

        Args:
            path: Folder with config.json, tokenizer files and safetensors weights.
            device: ``"cpu"``, ``"cuda"``, ``"auto"`` or a torch device; unset
                reads `Settings.device`.
            dtype: Weight dtype, as a torch dtype or its name. Unset means
                bfloat16 on a CUDA device that supports it, float32 otherwise.
            reference: Name recorded in logs; defaults to the folder path.

        Returns:
            The generator, with the model in eval mode.

        Raises:
            GenerationError: If the folder is missing, holds only pickle weights,
                is not a causal LM, or transformers cannot load it.
            ValueError: If `device` or `dtype` is unknown.
        """
        folder = _check_folder(path)
        target = _select_device(device)
        weights_dtype = _select_dtype(dtype, device=target)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(folder), dtype=weights_dtype, use_safetensors=True
            )
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError, KeyError) as exc:
            raise GenerationError(
                f"Loading the causal LM in `path` {str(folder)!r} failed: {exc}"
            ) from exc
        generator = cls(model, tokenizer, device=target, reference=reference or str(folder))
        logger.info(
            "Generator loaded: reference=%s device=%s dtype=%s context=%s",
            generator.reference,
            target,
            weights_dtype,
            generator.context_length,
        )
        return generator

    @classmethod
    def from_registry(
        cls,
        reference: str,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> TextGenerator:
        """Load a registered version after verifying its checksums.

        Raises:
            ValueError: If `reference` is not a valid model reference.
            ModelVersionNotFoundError: If no version matches `reference`.
            IntegrityError: If the version's files changed since registration.
            GenerationError: As `from_folder` does.
        """
        from shared.registry import find_version, verify_version

        row = find_version(reference)
        model_dir = verify_version(row)
        return cls.from_folder(model_dir, device=device, dtype=dtype, reference=row.reference)

    def build_prompt(self, system: str, user: str) -> str:
        """Render a system text and a user message as `shared.generation.build_prompt` does."""
        return build_prompt(self.tokenizer, system=system, user=user)

    def fit_prompt(
        self,
        system: str,
        ticket: str,
        passages: Sequence[str],
        *,
        max_new_tokens: int,
        context_limit: int | None = None,
        ticket_truncation: TicketTruncation = "middle",
    ) -> FittedPrompt:
        """Build a drafting prompt that fits the context, as `shared.generation.fit_prompt` does.

        Args:
            system: Instructions for the model, including how to cite passages.
            ticket: The customer's ticket text.
            passages: Retrieved passages, best first.
            max_new_tokens: Tokens kept free for the reply.
            context_limit: Context size to fit; unset uses the model's.
            ticket_truncation: Where to cut a ticket that alone is too long.

        Raises:
            ValueError: If `context_limit` exceeds the model's context, or is
                unset for a model whose config and tokenizer state no context size.
            GenerationError: If the system text does not fit.
        """
        limit = self._resolve_context_limit(context_limit)
        return fit_prompt(
            self.tokenizer,
            system=system,
            ticket=ticket,
            passages=passages,
            max_new_tokens=max_new_tokens,
            context_limit=limit,
            ticket_truncation=ticket_truncation,
        )

    def count_tokens(self, prompt: str) -> int:
        """Return the number of tokens the model reads for `prompt`."""
        return len(encode_prompt(self.tokenizer, prompt))

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 128,
        batch_size: int = 8,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> list[Generation]:
        """Generate one reply per prompt, in batches of prompts of similar length.

        Decoding is greedy unless `do_sample` is set. Sampling draws from torch's
        process-wide random generator, so seed that for repeatable samples.

        Args:
            prompts: Prompt strings, e.g. from `build_prompt` or `fit_prompt`.
            max_new_tokens: Maximum tokens generated per reply.
            batch_size: Maximum prompts per forward pass.
            do_sample: Sample instead of picking the most probable token.
            temperature: Softmax temperature when sampling.
            top_p: Nucleus-sampling probability mass when sampling.

        Returns:
            One `Generation` per prompt, in input order.

        Raises:
            TypeError: If `prompts` is a single string.
            ValueError: If a prompt is empty or an option is out of range.
            GenerationError: If a prompt plus `max_new_tokens` exceeds the
                model's context, or the model fails.
        """
        if isinstance(prompts, str):
            raise TypeError("`prompts` must be a sequence of strings, got one string; wrap it.")
        _check_positive(max_new_tokens=max_new_tokens, batch_size=batch_size)
        encoded = [
            self._encode_checked(prompt, name=f"prompts[{index}]", max_new_tokens=max_new_tokens)
            for index, prompt in enumerate(prompts)
        ]
        config = self._generation_config(
            max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p
        )
        results: list[Generation | None] = [None] * len(encoded)
        lengths = [len(ids) for ids in encoded]
        for batch in iter_length_buckets(lengths, batch_size):
            generations = self._generate_batch([encoded[index] for index in batch], config)
            for index, generation in zip(batch, generations, strict=True):
                results[index] = generation
        return [generation for generation in results if generation is not None]

    def stream(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> Generator[str, None, None]:
        """Yield the reply to one prompt in text pieces as the tokens are generated.

        With greedy decoding, the pieces joined and stripped equal the text that
        `generate` returns for the same prompt. Generation runs in a background
        thread that starts on the first `next()`. Closing the iterator, or
        dropping it, stops generation and joins the thread.

        Raises:
            ValueError: If `prompt` is empty or `max_new_tokens` is below 1;
                raised by this call.
            GenerationError: If the prompt plus `max_new_tokens` exceeds the
                context (raised by this call), or the model fails (raised while iterating).
        """
        _check_positive(max_new_tokens=max_new_tokens, batch_size=1)
        ids = self._encode_checked(prompt, name="prompt", max_new_tokens=max_new_tokens)
        config = self._generation_config(
            max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p
        )
        inputs = {
            "input_ids": torch.tensor([ids], device=self.device),
            "attention_mask": torch.ones((1, len(ids)), dtype=torch.long, device=self.device),
        }
        return iter_streamed_text(
            self.model, self.tokenizer, inputs=inputs, generation_config=config
        )

    def _resolve_context_limit(self, context_limit: int | None) -> int:
        if context_limit is None:
            if self.context_length is None:
                raise ValueError(
                    "`context_limit` is unset and the model states no context size "
                    "(no `max_position_embeddings` in config.json and no real "
                    "`model_max_length` in the tokenizer). Pass `context_limit`."
                )
            return self.context_length
        if self.context_length is not None and context_limit > self.context_length:
            raise ValueError(
                f"`context_limit` {context_limit!r} exceeds the model's context of "
                f"{self.context_length} tokens; pass at most {self.context_length} "
                "or leave it unset."
            )
        return context_limit

    def _encode_checked(self, prompt: str, *, name: str, max_new_tokens: int) -> list[int]:
        """Encode a prompt that is non-empty and leaves room for `max_new_tokens`."""
        if not isinstance(prompt, str):
            raise TypeError(f"`{name}` must be a string, got {type(prompt).__name__}.")
        ids = encode_prompt(self.tokenizer, prompt)
        if not ids:
            raise ValueError(f"`{name}` {prompt!r} encodes to no tokens; pass a non-empty prompt.")
        if self.context_length is not None and len(ids) + max_new_tokens > self.context_length:
            raise GenerationError(
                f"`{name}` has {len(ids)} tokens, and with `max_new_tokens` {max_new_tokens} "
                f"it exceeds the model's context of {self.context_length} tokens. "
                "Shorten it with `fit_prompt` or lower `max_new_tokens`."
            )
        return ids

    def _generation_config(
        self, *, max_new_tokens: int, do_sample: bool, temperature: float, top_p: float
    ) -> GenerationConfig:
        # A config built here, rather than keyword arguments, keeps transformers from
        # warning about settings that conflict with the model's generation_config.json.
        options: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": list(self.stop_token_ids) or None,
        }
        if do_sample:
            if temperature <= 0 or not 0 < top_p <= 1:
                raise ValueError(
                    f"`temperature` must be above 0 and `top_p` in (0, 1] when sampling, "
                    f"got temperature={temperature!r} and top_p={top_p!r}."
                )
            options.update(temperature=temperature, top_p=top_p)
        else:
            options.update(_GREEDY_SAMPLING_SETTINGS)
        return GenerationConfig(**options)

    @torch.inference_mode()
    def _generate_batch(self, batch: list[list[int]], config: GenerationConfig) -> list[Generation]:
        input_ids, attention_mask = self._pad_left(batch)  # (B, T) each
        started = time.perf_counter()
        try:
            output = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, generation_config=config
            )
        except (RuntimeError, ValueError) as exc:
            raise GenerationError(
                f"Generating a batch of {len(batch)} prompts with {self.reference} failed: {exc}. "
                "If the device ran out of memory, lower `batch_size`."
            ) from exc
        seconds = time.perf_counter() - started
        new_tokens = output[:, input_ids.shape[1] :].tolist()  # (B, new)
        logger.debug(
            "Generated batch: size=%d prompt_tokens=%d new_tokens=%d seconds=%.2f",
            len(batch),
            input_ids.shape[1],
            len(new_tokens[0]) if new_tokens else 0,
            seconds,
        )
        return [self._to_generation(row, seconds=seconds) for row in new_tokens]

    def _pad_left(self, batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(ids) for ids in batch)
        pad_id = self.tokenizer.pad_token_id
        rows = [[pad_id] * (width - len(ids)) + ids for ids in batch]
        masks = [[0] * (width - len(ids)) + [1] * len(ids) for ids in batch]
        return (
            torch.tensor(rows, dtype=torch.long, device=self.device),
            torch.tensor(masks, dtype=torch.long, device=self.device),
        )

    def _to_generation(self, new_tokens: list[int], *, seconds: float) -> Generation:
        # Rows that stopped early are filled up with pad tokens, which may equal EOS,
        # so the reply ends at its first stop token.
        stops = set(self.stop_token_ids)
        end = next((i for i, token in enumerate(new_tokens) if token in stops), None)
        reply_tokens = new_tokens if end is None else new_tokens[: end + 1]
        text = str(self.tokenizer.decode(reply_tokens, skip_special_tokens=True)).strip()
        return Generation(
            text=text, n_new_tokens=len(reply_tokens), finished=end is not None, seconds=seconds
        )


def _check_positive(*, max_new_tokens: int, batch_size: int) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be at least 1, got {max_new_tokens!r}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1, got {batch_size!r}.")


def _check_folder(path: str | Path) -> Path:
    folder = Path(path).expanduser().resolve()
    try:
        # An absolute path is always read as a folder, never as a hub name.
        return resolve_base_model(str(folder), kind="causal-lm").path
    except BaseModelError as exc:
        raise GenerationError(f"Cannot load a causal LM from `path` {str(path)!r}: {exc}") from exc


def _select_device(device: torch.device | str | None) -> torch.device:
    if isinstance(device, torch.device):
        return device
    return select_device(device)


def _select_dtype(dtype: torch.dtype | str | None, *, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if dtype not in _DTYPE_NAMES:
        raise ValueError(
            f"`dtype` must be a torch dtype or one of {sorted(_DTYPE_NAMES)}, got {dtype!r}."
        )
    return _DTYPE_NAMES[dtype]


_cache_lock = threading.Lock()
_cache: dict[tuple[int, str], TextGenerator] = {}


def load_generator(reference_or_folder: str | Path) -> TextGenerator:
    """Return the process's generator for a registry reference or a model spec, loading it once.

    A string that parses as a registry reference (``name``, ``name@3``,
    ``name@production``) and is not an existing path loads a registered version.
    Anything else is resolved as a base-model spec: a folder, ``bundled:<package>``
    or a hub id. The cache is keyed by process id, so a forked worker loads its own copy.
    A registry reference is resolved to a version on every call (one indexed
    query), so a long-running worker drafts with a newly promoted version on its
    next call and drops the one it replaces.

    Raises:
        GenerationError: If the model cannot be loaded.
        ModelVersionNotFoundError: If a registry reference matches no version.
        IntegrityError: If a registered version's files changed.
    """
    text = str(reference_or_folder).strip()
    registered = _is_registry_reference(text)
    if registered:
        from shared.registry import find_version

        text = find_version(text).reference
    pid = os.getpid()
    with _cache_lock:
        generator = _cache.get((pid, text))
        if generator is None:
            if registered:
                name = text.rsplit("@", 1)[0]
                for key in [k for k in _cache if k[0] == pid and k[1].rsplit("@", 1)[0] == name]:
                    logger.info("generator replaced old=%s new=%s", key[1], text)
                    del _cache[key]
            generator = _cache[(pid, text)] = _load_uncached(text)
        return generator


def clear_generator_cache() -> None:
    """Forget every loaded generator, e.g. after a new drafter version is promoted."""
    with _cache_lock:
        _cache.clear()


def _load_uncached(text: str) -> TextGenerator:
    if _is_registry_reference(text):
        return TextGenerator.from_registry(text)
    try:
        resolved = resolve_base_model(text, kind="causal-lm")
    except BaseModelError as exc:
        raise GenerationError(f"Cannot load a causal LM for {text!r}: {exc}") from exc
    return TextGenerator.from_folder(resolved.path, reference=text)


def _is_registry_reference(text: str) -> bool:
    from shared.registry import parse_reference

    if text.startswith(("bundled:", ".", "/", "~")) or Path(text).expanduser().exists():
        return False
    try:
        parse_reference(text)
    except ValueError:
        return False
    return True
