"""Write a random-weight model with a real model's shape, on the GPU host itself.

    python3 make_shaped_model.py qwen2-1.5b /models/qwen2-1.5b
    python3 make_shaped_model.py llama3.1-8b /models/llama3.1-8b

config.json copies the public model's shape (DeepSeek-R1-Distill-Qwen-1.5B,
Llama-3.1-8B-Instruct); the weights are bf16 noise written as sharded
safetensors, so vLLM loads the same bytes a real checkpoint has and the memory
planner reads the same headers. The tokenizer is a word-level one with one
entry per vocabulary id (the model samples any id; each must decode) and a chat
template, so the OpenAI chat API works end to end. Nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes import SHAPES, tensors  # noqa: E402  (beside this script)

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|{{ message['role'] }}|> {{ message['content'] }} {{ eos_token }} "
    "{% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}"
)
SHARD_BYTES = 4 * 1024 ** 3


def tokenizer(cfg: dict) -> PreTrainedTokenizerFast:
    vocab_size = cfg["vocab_size"]
    bos, eos = cfg["bos_token_id"], cfg["eos_token_id"]
    eos = eos[0] if isinstance(eos, list) else eos
    special = {0: "<unk>", bos: "<s>", eos: "</s>", 3: "<|system|>", 4: "<|user|>", 5: "<|assistant|>"}
    words = "the fleet serves models hello say to a of and GPU host token cache fits".split()
    vocab, w = {}, iter(words)
    for i in range(vocab_size):
        vocab[special.get(i) or next(w, f"w{i}")] = i
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="</s>", model_max_length=cfg["max_position_embeddings"])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def main(kind: str, out: Path) -> None:
    cfg = SHAPES[kind]
    out.mkdir(parents=True, exist_ok=True)
    if (out / ".complete").exists():
        print(f"{out} already holds {kind}")
        return
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=device).manual_seed(0)
    shard: dict[str, torch.Tensor] = {}
    shard_bytes, shards, weight_map, total = 0, [], {}, 0

    def flush() -> None:
        nonlocal shard, shard_bytes
        if shard:
            name = f"model-{len(shards) + 1:05d}.safetensors"
            save_file(shard, str(out / name), metadata={"format": "pt"})
            shards.append(name)
            weight_map.update({k: name for k in shard})
            shard, shard_bytes = {}, 0

    for name, shape in tensors(cfg).items():
        if name.endswith("norm.weight"):
            t = torch.ones(shape, dtype=torch.bfloat16)
        else:
            t = (torch.randn(shape, generator=gen, device=device, dtype=torch.float32) * 0.02).to(torch.bfloat16).cpu()
        shard[name] = t
        shard_bytes += t.numel() * 2
        total += t.numel() * 2
        if shard_bytes >= SHARD_BYTES:
            flush()
    flush()
    count = len(shards)
    renamed = {}
    for i, old in enumerate(shards):
        new = f"model-{i + 1:05d}-of-{count:05d}.safetensors"
        (out / old).rename(out / new)
        renamed[old] = new
    index = {"metadata": {"total_size": total}, "weight_map": {k: renamed[v] for k, v in weight_map.items()}}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"], "do_sample": True}))
    tokenizer(cfg).save_pretrained(str(out))
    for path in out.iterdir():  # safetensors writes 0600; the service user must read them
        path.chmod(0o644)
    (out / ".complete").write_text(kind)
    print(f"{kind}: {total / 2**30:.2f} GiB of bf16 weights in {count} shard(s) at {out}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
