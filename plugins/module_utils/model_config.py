"""The figures of a model's config.json that decide its weights and KV cache.

Follows vLLM's reading of Hugging Face configs (``vllm/config/model.py``,
``vllm/transformers_utils/config.py``): which keys name the layer count, the
KV heads, the context length, and how multimodal configs nest the language model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

# vLLM's fallback when config.json names no length at all.
DEFAULT_MODEL_LEN = 2048

# Sub-configs that hold the language model of a multimodal config.
TEXT_CONFIG_KEYS: Tuple[str, ...] = ("text_config", "llm_config", "language_config")
# vLLM's ModelArchConfigConvertor.derive_max_model_len_and_key, in order.
MAX_LEN_KEYS: Tuple[str, ...] = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
# RoPE types whose max_position_embeddings already includes the scaling.
ROPE_PRESCALED = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")
FALCON_TYPES = ("falcon", "RefinedWeb", "RefinedWebModel")
KV_HEAD_KEYS = ("n_head_kv", "num_kv_heads", "num_key_value_heads", "multi_query_group_num",
                "num_attention_groups")
# RoPE types vLLM treats as LongRoPE ("su" is renamed by patch_rope_parameters).
LONGROPE_TYPES = ("longrope", "su")
# Kinds of layer in ModelShape.layer_kinds.
FULL, SLIDING, STATE = "full", "sliding", "state"
# layer_types entries (transformers / config.json) and the kind vLLM gives them.
LAYER_TYPE_KINDS = {
    "full_attention": FULL,
    "attention": FULL,  # granitemoehybrid
    "sliding_attention": SLIDING,
    "linear_attention": STATE,
    "mamba": STATE,
    "mamba2": STATE,
    "conv": STATE,
}
# Defaults transformers fills in when a config.json omits the key; only for keys
# this reader needs (google/gemma-3-*-it text_config names no vocab or length).
TRANSFORMERS_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "gemma3_text": {"vocab_size": 262208, "max_position_embeddings": 131072},
}
# What the user controls when config.json is wrong: the model they chose.
CONFIG_FIX = ("Fix: the model directory's config.json is damaged or not a causal LM's: re-download the model "
              "(vllm_model, or model in vllm_instances), re-copy vllm_model_src (model_src), or correct the key.")
POSITIVE_INT = "a positive whole number (a JSON integer)"


class ConfigError(ValueError):
    """A config.json key that is present but unusable, named as the user finds it in the file."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        self.key, self.value, self.expected = key, value, expected
        super().__init__(self.message("config.json"))

    def message(self, where: str) -> str:
        return f"{where} {self.key} is {json.dumps(self.value)}: expected {self.expected}. {CONFIG_FIX}"


def _first(cfg: Dict[str, Any], keys: Tuple[str, ...], default: Any = None) -> Any:
    for key in keys:
        value = cfg.get(key)
        if value is not None:
            return value
    return default


def text_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The language-model part of a config, top-level keys as fallback.

    Multimodal configs nest it (``text_config``); dtype and tying often stay
    at the top level, hence the merge.
    """
    for key in TEXT_CONFIG_KEYS:
        sub = config.get(key)
        if isinstance(sub, dict) and sub:
            merged = {k: v for k, v in config.items() if k not in TEXT_CONFIG_KEYS}
            merged.update({k: v for k, v in sub.items() if v is not None})
            return _with_defaults(merged)
    return _with_defaults(dict(config))


def _with_defaults(cfg: Dict[str, Any]) -> Dict[str, Any]:
    for key, value in TRANSFORMERS_DEFAULTS.get(str(cfg.get("model_type", "")), {}).items():
        if cfg.get(key) is None:
            cfg[key] = value
    return cfg


def _rope_parameter_sets(cfg: Dict[str, Any]) -> List[Dict[str, Any]]:
    """RoPE settings as a list: transformers 5 nests them per layer type."""
    rope = cfg.get("rope_parameters")
    if not isinstance(rope, dict):
        rope = cfg.get("rope_scaling")
    if not isinstance(rope, dict) or not rope:
        return []
    if all(isinstance(v, dict) for v in rope.values()):
        return [dict(v) for v in rope.values()]
    return [dict(rope)]


@dataclass(frozen=True)
class ModelShape:
    """The figures of a config that decide weights and KV cache size."""

    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    tie_word_embeddings: bool
    config_dtype: Optional[str]
    model_max_len: int  # the longest max_model_len vLLM accepts
    model_max_len_source: str
    mla: bool
    sliding_window: Optional[int]
    notes: Tuple[str, ...] = ()
    # One entry per layer: FULL, SLIDING or STATE (mamba / linear attention,
    # no KV cache). Empty only for ModelShapes built by hand.
    layer_kinds: Tuple[str, ...] = ()
    # Per layer, the window of a SLIDING layer, None for the others.
    layer_windows: Tuple[Optional[int], ...] = ()
    # max_model_len vLLM picks when none is given: LongRoPE models start at
    # original_max_position_embeddings, all others at model_max_len.
    default_max_len: int = 0
    default_max_len_source: str = ""

    @property
    def attention(self) -> str:
        if self.mla:
            return "mla"
        if self.num_kv_heads == 1 and self.num_heads > 1:
            return "mqa"
        if self.num_kv_heads < self.num_heads:
            return "gqa"
        return "mha"


def _key_of(config: Dict[str, Any], key: str) -> str:
    """The key as it is written in config.json: nested ones with their sub-config's name."""
    for sub_key in TEXT_CONFIG_KEYS:
        sub = config.get(sub_key)
        if isinstance(sub, dict) and sub:
            return f"{sub_key}.{key}" if sub.get(key) is not None else key
    return key


def _positive_int(config: Dict[str, Any], key: str, value: Any) -> int:
    """vLLM sizes tensors and divides by these: a float (even 32.0), string or bool fails there."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(_key_of(config, key), value, POSITIVE_INT)
    return value


def _int(config: Dict[str, Any], cfg: Dict[str, Any], keys: Tuple[str, ...], what: str) -> int:
    for key in keys:
        if cfg.get(key) is not None:
            return _positive_int(config, key, cfg[key])
    raise ValueError(f"config.json names no {what} (looked for {', '.join(keys)}; null counts as missing). "
                     f"{CONFIG_FIX}")


def is_mla(cfg: Dict[str, Any]) -> bool:
    """DeepSeek-V2/V3-style latent attention (one compressed KV vector)."""
    return cfg.get("kv_lora_rank") is not None and cfg.get("qk_rope_head_dim") is not None


def _num_kv_heads(config: Dict[str, Any], cfg: Dict[str, Any], num_heads: int, heads_key: str) -> int:
    """Follows vLLM's get_total_num_kv_heads (Falcon, GPTBigCode, DBRX, GQA).

    A key that is present decides, 0 included: vLLM's model code divides by it
    (only an absent or null key means one KV head per attention head).
    """
    model_type = str(cfg.get("model_type", ""))
    new_falcon = model_type in FALCON_TYPES and cfg.get("new_decoder_architecture", False)
    if not new_falcon and cfg.get("multi_query", False):
        return 1
    key, value = "", None
    attn = cfg.get("attn_config")
    if isinstance(attn, dict) and attn.get("kv_n_heads") is not None:
        key, value = "attn_config.kv_n_heads", attn["kv_n_heads"]
    else:
        key = next((k for k in KV_HEAD_KEYS if cfg.get(k) is not None), "")
        value = cfg.get(key) if key else None
    if not key:
        return num_heads
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(_key_of(config, key) if "." not in key else key, value, POSITIVE_INT)
    if num_heads % value:
        # vLLM's Attention layer asserts num_heads % num_kv_heads == 0 (grouped-query attention).
        raise ConfigError(_key_of(config, key) if "." not in key else key, value,
                          f"a divisor of {_key_of(config, heads_key)} ({num_heads}): each KV head "
                          "serves a whole group of attention heads")
    return value


def _check_max_len_keys(config: Dict[str, Any], cfg: Dict[str, Any]) -> None:
    """vLLM takes the min() of these numbers: a string fails there, 0 or less leaves no context."""
    for key in MAX_LEN_KEYS:
        value = cfg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(_key_of(config, key), value, "a positive number of tokens (a JSON number)")


def _model_max_len(cfg: Dict[str, Any], tokenizer_config: Optional[Dict[str, Any]],
                   notes: List[str]) -> Tuple[int, str]:
    """The longest context vLLM accepts without VLLM_ALLOW_LONG_MAX_MODEL_LEN."""
    derived: Optional[float] = None
    source = ""
    for key in MAX_LEN_KEYS:
        value = cfg.get(key)
        if isinstance(value, (int, float)) and value > 0 and (derived is None or value < derived):
            derived, source = float(value), key
    # Command-R names its real limit model_max_length, above the others.
    if isinstance(cfg.get("model_max_length"), (int, float)) and cfg["model_max_length"] > 0:
        derived, source = float(cfg["model_max_length"]), "model_max_length"
    if tokenizer_config:
        tok_len = tokenizer_config.get("model_max_length")
        if isinstance(tok_len, (int, float)) and tok_len > 0 and (derived is None or tok_len < derived):
            derived, source = float(tok_len), "tokenizer_config.json model_max_length"
    if derived is None:
        notes.append(f"config.json names no context length; vLLM assumes {DEFAULT_MODEL_LEN}.")
        derived, source = float(DEFAULT_MODEL_LEN), "vLLM default"
    rope_sets = _rope_parameter_sets(cfg)
    if rope_sets and "gemma3" not in str(cfg.get("model_type", "")):
        factor = 1.0
        for rope in rope_sets:
            rope_type = rope.get("rope_type", rope.get("type", "default"))
            if rope_type not in ROPE_PRESCALED and rope.get("factor") is not None:
                factor = float(rope["factor"])
        if factor != 1.0:
            derived *= factor
            source += f" x rope factor {factor:g}"
    return int(derived), source


def _default_max_len(cfg: Dict[str, Any], limit: int, limit_source: str,
                     notes: List[str]) -> Tuple[int, str]:
    """vLLM's max_model_len when none is given (vllm/config/model.py _get_and_verify_max_len).

    LongRoPE models default to original_max_position_embeddings, to keep short
    prompts on the short factors; a user may still ask for up to the limit.
    """
    rope_sets = _rope_parameter_sets(cfg)
    if any(r.get("rope_type", r.get("type")) in LONGROPE_TYPES for r in rope_sets):
        original = cfg.get("original_max_position_embeddings")
        if original is None:
            original = next((r["original_max_position_embeddings"] for r in rope_sets
                             if r.get("original_max_position_embeddings")), None)
        if original:
            notes.append(f"LongRoPE: vLLM defaults to original_max_position_embeddings ({int(original)}); "
                         f"vllm_max_model_len may go up to {limit}.")
            return int(original), "original_max_position_embeddings (longrope)"
    return limit, limit_source


def _sliding_window(cfg: Dict[str, Any]) -> Optional[int]:
    if cfg.get("use_sliding_window") is False:
        return None
    window = cfg.get("sliding_window")
    if isinstance(window, int) and window > 0:
        return window
    return None


def _declared_layer_types(cfg: Dict[str, Any], num_layers: int) -> Optional[List[str]]:
    """layer_types as transformers fills them in: config.json's list, else the model type's default."""
    declared = cfg.get("layer_types")
    if isinstance(declared, list) and declared:
        return [str(t) for t in declared]
    model_type = str(cfg.get("model_type", ""))
    pattern = None
    if model_type in ("gemma2", "gpt_oss"):
        pattern = 2
    elif model_type in ("gemma3", "gemma3_text", "cohere2"):
        pattern = int(cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern")
                      or (4 if model_type == "cohere2" else 6))
    if pattern:
        # Layer i is global when (i + 1) % pattern == 0 (Gemma2/Gemma3/Cohere2/GptOss configs).
        return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(num_layers)]
    if model_type == "qwen3_next":
        interval = int(cfg.get("full_attention_interval") or 4)
        return ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(num_layers)]
    if model_type == "jamba":
        period, offset = int(cfg.get("attn_layer_period") or 8), int(cfg.get("attn_layer_offset") or 4)
        return ["full_attention" if i % period == offset else "mamba" for i in range(num_layers)]
    if model_type.startswith(("qwen2", "qwen3")) and cfg.get("use_sliding_window") and cfg.get("sliding_window"):
        first = int(cfg.get("max_window_layers", num_layers))
        return ["sliding_attention" if i >= first else "full_attention" for i in range(num_layers)]
    return None


def layer_kinds(cfg: Dict[str, Any], num_layers: int, window: Optional[int],
                notes: List[str]) -> Tuple[Tuple[str, ...], Tuple[Optional[int], ...]]:
    """Each layer's KV cache kind and window, as vLLM's model code builds its attention layers.

    Models whose layer_types mix kinds give each layer its own window (vLLM's
    is_interleaved); otherwise vLLM applies the model-level sliding_window, if
    any, to every attention layer (CacheConfig.sliding_window).
    """
    types = _declared_layer_types(cfg, num_layers)
    if types is not None and len(types) < num_layers:
        notes.append(f"config.json layer_types names {len(types)} layers for {num_layers}: ignored.")
        types = None
    types = (types or ["full_attention"] * num_layers)[:num_layers]
    unknown = sorted({t for t in types if t not in LAYER_TYPE_KINDS})
    if unknown:
        notes.append(f"Unknown layer_types {', '.join(unknown)}: counted as full attention.")
    base = [LAYER_TYPE_KINDS.get(t, FULL) for t in types]
    if len(set(types)) > 1:
        kinds = [SLIDING if k == SLIDING and window else (FULL if k == SLIDING else k) for k in base]
        model_type = str(cfg.get("model_type", ""))
        if SLIDING in kinds and FULL in kinds and model_type.startswith(("qwen2", "qwen3")):
            notes.append("vLLM's Qwen2/Qwen3 refuse a sliding window on only some layers "
                         "(max_window_layers below num_hidden_layers).")
    else:
        kinds = [k if k == STATE else (SLIDING if window else FULL) for k in base]
    if STATE in kinds:
        notes.append(f"{kinds.count(STATE)} of {num_layers} layers keep a recurrent state "
                     "(mamba / linear attention), not a KV cache.")
    windows = tuple(window if k == SLIDING else None for k in kinds)
    return tuple(kinds), windows


def model_shape(config: Dict[str, Any], tokenizer_config: Optional[Dict[str, Any]] = None) -> ModelShape:
    """Read the figures the planner needs, raising ValueError naming what is missing."""
    if not isinstance(config, dict):
        raise ValueError("config.json must hold a JSON object")
    cfg = text_config(config)
    notes: List[str] = []
    hidden = _int(config, cfg, ("hidden_size", "n_embd", "d_model", "model_dim", "dim"), "hidden size")
    layers = _int(config, cfg, ("num_hidden_layers", "n_layer", "num_layers", "n_layers"), "layer count")
    heads_keys = ("num_attention_heads", "n_head", "num_heads", "n_heads")
    heads = _int(config, cfg, heads_keys, "attention head count")
    heads_key = next(k for k in heads_keys if cfg.get(k) is not None)
    mla = is_mla(cfg)
    if mla:
        kv_heads = 1
        head_dim = (_positive_int(config, "kv_lora_rank", cfg["kv_lora_rank"])
                    + _positive_int(config, "qk_rope_head_dim", cfg["qk_rope_head_dim"]))
    else:
        kv_heads = _num_kv_heads(config, cfg, heads, heads_key)
        head_dim = _head_dim(config, cfg, hidden, heads, heads_key)
    vocab = _int(config, cfg, ("vocab_size", "padded_vocab_size"), "vocabulary size")
    inter_key = next((k for k in ("intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim")
                      if cfg.get(k) is not None), "")
    inter = _positive_int(config, inter_key, cfg[inter_key]) if inter_key else 4 * hidden
    _check_max_len_keys(config, cfg)
    dtype = _first(cfg, ("torch_dtype", "dtype"))
    max_len, source = _model_max_len(cfg, tokenizer_config, notes)
    default_len, default_source = _default_max_len(cfg, max_len, source, notes)
    window = _sliding_window(cfg)
    kinds, windows = layer_kinds(cfg, layers, window, notes)
    if SLIDING in kinds and FULL in kinds:
        notes.append(f"{kinds.count(SLIDING)} of {layers} layers use a sliding window of {window} tokens.")
    elif window:
        notes.append(f"Sliding-window attention ({window} tokens).")
    if SLIDING in kinds:
        notes.append("Sliding-window layers keep only their window plus the tokens in flight, in vLLM's "
                     "KV cache groups (kv_cache_layout.py).")
    if STATE in kinds:
        notes.append("Hybrid attention/state-space model: the state layers' cache is not counted "
                     "(only the attention layers' KV cache is planned).")
    if any(k in config for k in TEXT_CONFIG_KEYS):
        notes.append("Multimodal config: the language model's text_config is used.")
    return ModelShape(
        model_type=str(cfg.get("model_type", "")),
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=vocab,
        intermediate_size=int(inter),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", _default_tie(cfg))),
        config_dtype=str(dtype) if dtype else None,
        model_max_len=max_len,
        model_max_len_source=source,
        mla=mla,
        sliding_window=window,
        notes=tuple(notes),
        layer_kinds=kinds,
        layer_windows=windows,
        default_max_len=default_len,
        default_max_len_source=default_source,
    )


def _head_dim(config: Dict[str, Any], cfg: Dict[str, Any], hidden: int, heads: int, heads_key: str) -> int:
    """head_dim as transformers reads it: the key when set (null: derived), else hidden / heads."""
    for key in ("head_dim", "hidden_size_per_head"):
        if cfg.get(key) is not None:
            return _positive_int(config, key, cfg[key])
    if hidden % heads:
        # Name the keys the file sets, not the head_dim derived from them.
        hidden_key = next(k for k in ("hidden_size", "n_embd", "d_model", "model_dim", "dim")
                          if cfg.get(k) is not None)
        raise ConfigError(_key_of(config, hidden_key), hidden,
                          f"a multiple of {_key_of(config, heads_key)} ({heads}), since the file sets "
                          "no head_dim")
    return hidden // heads


def _default_tie(cfg: Dict[str, Any]) -> bool:
    """transformers' default for tie_word_embeddings when config.json omits it."""
    return str(cfg.get("model_type", "")) not in ("llama", "mistral", "mixtral", "qwen2", "qwen3")

