"""A tiny random CLIP text tower and a matching BPE tokenizer, built offline for tests."""

from __future__ import annotations

import torch

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tiny_clip_tokenizer():
    """A CLIP BPE tokenizer over single letters plus two merges ("c a" -> "ca", "ca r</w>")."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for c in LETTERS:
            vocab[c + suffix] = len(vocab)
    vocab["ca"] = len(vocab)
    vocab["car</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[("c", "a"), ("ca", "r</w>")])


def tiny_clip_text_model(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        projection_dim=16,
        max_position_embeddings=24,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    return CLIPTextModelWithProjection(config).eval()
