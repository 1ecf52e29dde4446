"""PromptLearner: zero-length context = the frozen encoder; a context equal to a word's token
embedding = that word written in front of the text; gradients reach the context only."""

from __future__ import annotations

import pytest
import torch
from tiny_clip import tiny_clip_text_model, tiny_clip_tokenizer

from babelseg.labels.cache import CachedTextEncoder, EmbeddingCache
from babelseg.labels.encoders.clip import ClipTextEncoder
from babelseg.labels.encoders.hash import HashTextEncoder
from babelseg.labels.encoders.minilm import MiniLMTextEncoder
from babelseg.labels.prompt import PromptLearner, prompt_learner_for


@pytest.fixture(scope="module")
def minilm() -> MiniLMTextEncoder:
    return MiniLMTextEncoder()


@pytest.fixture(scope="module")
def tiny_clip() -> ClipTextEncoder:
    tok = tiny_clip_tokenizer()
    return ClipTextEncoder.from_modules(tiny_clip_text_model(len(tok)), tok, id="tiny-clip")


def _set_context(learner: PromptLearner, token_ids: list[int]) -> None:
    table = learner.transformer.get_input_embeddings().weight
    with torch.no_grad():
        learner.context.copy_(table[token_ids])


def test_zero_context_equals_the_frozen_minilm(minilm):
    texts = ["car", "a person riding a bicycle", "road"]
    learner = PromptLearner(encoder=minilm, context_length=0)
    assert list(learner.parameters()) == []
    torch.testing.assert_close(learner(texts), minilm.encode(texts), atol=1e-5, rtol=0)


def test_minilm_context_of_a_word_embedding_equals_that_word_in_front(minilm):
    learner = PromptLearner(encoder=minilm, context_length=1)
    red = minilm.model.tokenizer("red", add_special_tokens=False)["input_ids"]
    assert len(red) == 1
    _set_context(learner, red)
    out = learner(["car", "road"])
    torch.testing.assert_close(out, minilm.encode(["red car", "red road"]), atol=1e-5, rtol=0)
    assert float((out[0].detach() - minilm.encode(["car"])[0]).abs().max()) > 1e-2


def test_minilm_gradients_reach_the_context_only(minilm):
    torch.manual_seed(0)
    learner = PromptLearner(encoder=minilm, context_length=4)
    assert [n for n, _ in learner.named_parameters()] == ["context"]
    assert list(learner.state_dict()) == ["context"]  # the encoder never enters a checkpoint
    assert learner.context.shape == (4, 384)
    assert 0.015 < float(learner.context.detach().std()) < 0.025  # N(0, 0.02)
    out = learner(["car", "truck", "car"])
    assert out.shape == (3, 384)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(out[0], out[2])
    (out[0] @ out[1]).backward()
    assert learner.context.grad is not None and float(learner.context.grad.abs().sum()) > 0
    assert all(p.grad is None for p in learner.transformer.parameters())
    assert learner._tokenize(("car", "truck", "car")) is learner._tokenize(("car", "truck", "car"))


def test_zero_context_equals_the_frozen_clip(tiny_clip):
    texts = ["car", "person", "traffic light"]
    learner = PromptLearner(encoder=tiny_clip, context_length=0)
    torch.testing.assert_close(learner(texts), tiny_clip.encode(texts), atol=1e-5, rtol=0)


def test_clip_context_sits_after_bos_and_pooling_follows_the_eos(tiny_clip):
    tok = tiny_clip.tokenizer
    learner = PromptLearner(encoder=tiny_clip, context_length=2)
    car, a = len(tok) - 1, tok.convert_tokens_to_ids("a</w>")
    _set_context(learner, [car, a])
    # "person" and "sky" have different lengths: the EOS of each moves by M = 2
    out = learner(["person", "sky"])
    want = tiny_clip.encode(["car a person", "car a sky"])
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def test_factory_unwraps_the_cache_and_rejects_hash(tiny_clip, tmp_path):
    cached = CachedTextEncoder(tiny_clip, EmbeddingCache(tmp_path))
    learner = prompt_learner_for(cached, 3)
    assert learner.transformer is tiny_clip.model and learner.context.shape == (3, 32)
    with pytest.raises(ValueError, match="prompt learning needs labels.encoder=minilm or clip"):
        prompt_learner_for(CachedTextEncoder(HashTextEncoder(), EmbeddingCache(tmp_path)), 3)
    with pytest.raises(ValueError, match="leaves no room"):
        PromptLearner(encoder=tiny_clip, context_length=22)
