"""Base model, tokenizer and LoRA adapter, built from the trial config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from agent.trial.config import TINY_MODEL, ConfigError, DeviceArgs, LoraArgs, ModelArgs

LIGER_UNDER_LORA = {"rope": True, "rms_norm": True, "swiglu": True, "cross_entropy": False}
"""Liger's kernels that leave every Linear module's forward in place. Its fused linear cross-entropy
is off: it multiplies by lm_head's weight directly, so a LoRA adapter on lm_head would be skipped."""


def resolve_model_path(name: str, cache_root: Path | None = None) -> str:
    """A Hub id as given, or a local model directory checked to hold a saved model; the built-in tiny
    model is built under `cache_root` (None: the default cache) the first time."""
    if name == TINY_MODEL:
        from agent.trial.tiny import ensure_tiny_model

        return str(ensure_tiny_model(cache_root))
    path = Path(name).expanduser()
    if not path.exists() and not name.startswith((".", "/", "~")):
        return name  # a Hub id; the loaders say whether it can be fetched
    if not path.is_dir():
        raise ConfigError(f"model directory {name!r} does not exist: check the path, or give a Hub id")
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"model directory {name!r} holds no model (no config.json): give a directory written by "
            "save_pretrained, or a Hub id"
        )
    return str(path)


def use_bf16(args: ModelArgs) -> bool:
    if args.bf16 == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return args.bf16 == "true"


def cannot_load_model(name: str, error: BaseException) -> ConfigError:
    return ConfigError(
        f"cannot load model {name!r}: {str(error).splitlines()[0]} "
        "(check the Hub id, your Hub login for gated models, or the local path)"
    )


def load_tokenizer(args: ModelArgs, cache_root: Path | None = None) -> Any:
    from transformers import AutoTokenizer

    path = resolve_model_path(args.model_name_or_path, cache_root)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as error:  # a missing tokenizer file or an unreachable Hub id
        raise ConfigError(
            f"cannot load the tokenizer of {args.model_name_or_path!r}: {str(error).splitlines()[0]} "
            "(check the Hub id, your Hub login for gated models, or that the directory holds tokenizer files)"
        ) from None
    if tokenizer.pad_token is None:  # Llama 3 ships no pad token; padding is masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(args: ModelArgs, cache_root: Path | None = None) -> Any:
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(args.model_name_or_path, cache_root)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16 if use_bf16(args) else torch.float32)
    except OSError as error:
        raise cannot_load_model(args.model_name_or_path, error) from None
    # Training reads no KV cache, and with one SDPA and eager attention build a plain causal mask
    # that lets packed examples see each other; generation asks for its cache explicitly.
    model.config.use_cache = False
    return model


def build_lora_config(args: LoraArgs) -> Any:
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.module_names(),
        bias="none",
    )


def check_target_modules(model: Any, args: LoraArgs) -> None:
    """Fail with one line naming the layers that do exist, before peft's long traceback would."""
    wanted = args.module_names()
    if wanted == "all-linear":
        return
    linear = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    missing = [m for m in wanted if m not in linear]
    if missing:
        raise ConfigError(
            f"target_modules={args.target_modules!r}: no linear layer named {', '.join(missing)} in this model; "
            f"use qv, qkv, qkvo, all-linear, or names from {', '.join(sorted(linear))}"
        )


def check_model(model_args: ModelArgs, lora_args: LoraArgs, cache_root: Path | None = None) -> None:
    """The model's directory and the LoRA target names, checked from its config alone, before any data or weights.

    The layers come from a skeleton of the model on the meta device: real module names, no memory.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_model_path(model_args.model_name_or_path, cache_root)
    try:
        model_config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:  # an unreachable or unknown Hub id, an unreadable config.json
        raise cannot_load_model(model_args.model_name_or_path, error) from None
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(model_config)
    check_target_modules(skeleton, lora_args)


def add_lora(model: Any, args: LoraArgs) -> Any:
    from peft import get_peft_model

    check_target_modules(model, args)
    return get_peft_model(model, build_lora_config(args))


def device_training_arguments(args: DeviceArgs, cuda: bool) -> dict[str, Any]:
    """`TrainingArguments` keywords for compile and Liger; a Liger request that cannot work is one line."""
    if args.use_liger_kernel:
        from transformers.utils import is_liger_kernel_available

        if not cuda:
            raise ConfigError("use_liger_kernel=true needs a CUDA GPU (Liger's kernels are Triton); set it false")
        if not is_liger_kernel_available():
            raise ConfigError("use_liger_kernel=true needs Liger: pip install 'lora-sweep[liger]'")
    return {
        "torch_compile": args.torch_compile,
        "use_liger_kernel": args.use_liger_kernel,
        "liger_kernel_config": dict(LIGER_UNDER_LORA) if args.use_liger_kernel else None,
    }
