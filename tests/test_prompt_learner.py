"""PromptLearner: the context is a shared prefix that never reads the class text, the pooling
leaves it out (MiniLM: mean of the class-text tokens; CLIP: its own EOS pooling), gradients
reach the context only, and learning the context can move classes apart."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_clip import tiny_clip_text_model, tiny_clip_tokenizer

from babelseg.labels import shared_prefix
from babelseg.labels.cache import CachedTextEncoder, EmbeddingCache
from babelseg.labels.encoders.clip import ClipTextEncoder
from babelseg.labels.encoders.hash import HashTextEncoder
from babelseg.labels.encoders.minilm import MiniLMTextEncoder
from babelseg.labels.prompt import PromptLearner, prompt_learner_for

TEXTS = ["car", "a person riding a bicycle", "road", "traffic light", "car"]


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


def _bert_reference(minilm: MiniLMTextEncoder, context: torch.Tensor, texts: list[str]):
    """transformers' BertModel on the padded ``[CLS] context text [SEP]`` with a 4-d mask:
    [CLS] and the context attend to [CLS] and the context only, the text tokens to every real
    token; the mean over the text tokens."""
    bert, tok = minilm.model[0].auto_model, minilm.model.tokenizer
    batch = tok(texts, padding=True, return_tensors="pt")
    ids, real = batch["input_ids"], batch["attention_mask"].bool()
    m = context.shape[0]
    words = bert.get_input_embeddings()(ids)
    inputs = torch.cat([words[:, :1], context.expand(len(texts), -1, -1), words[:, 1:]], 1)
    real = torch.cat([real[:, :1], real[:, :1].expand(-1, m), real[:, 1:]], 1)
    length = inputs.shape[1]
    keys = real[:, None, :].expand(-1, length, -1).clone()
    keys[:, : 1 + m, 1 + m :] = False  # the prefix does not read the text
    mask = keys[:, None]
    hidden = bert(inputs_embeds=inputs, attention_mask=mask).last_hidden_state
    pooled = real.clone()
    pooled[:, : 1 + m] = False
    pooled[torch.arange(len(texts)), real.sum(1) - 1] = False  # [SEP]
    weights = pooled.unsqueeze(-1).float()
    return F.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)


@pytest.mark.parametrize("context_length", [0, 3])
def test_minilm_is_bert_with_a_prefix_context_and_class_token_pooling(minilm, context_length):
    torch.manual_seed(0)
    learner = PromptLearner(encoder=minilm, context_length=context_length, init_std=0.5)
    with torch.no_grad():
        out = learner(TEXTS)
        want = _bert_reference(minilm, learner.context, TEXTS)
    assert out.shape == (5, 384)
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0], out[4])


def test_packed_chunks_give_the_same_embeddings(minilm, tiny_clip, monkeypatch):
    for encoder in (minilm, tiny_clip):
        torch.manual_seed(0)
        learner = PromptLearner(encoder=encoder, context_length=2)
        with torch.no_grad():
            whole = learner(TEXTS)
            monkeypatch.setattr(shared_prefix, "MAX_CHUNK_TOKENS", 3)
            learner._packed.clear()
            chunked = learner(TEXTS)
            monkeypatch.undo()
        assert len(learner._packed[(tuple(dict.fromkeys(TEXTS)), "cpu")].chunks) >= 3
        torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


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
    key = (("car", "truck"), "cpu")
    assert learner._packed[key] is learner._pack(("car", "truck"), torch.device("cpu"))


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
    out = learner(["person", "sky", "person"])
    want = tiny_clip.encode(["car a person", "car a sky", "car a person"])
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def _mean_off_diagonal_similarity(embeddings: torch.Tensor) -> float:
    sim = embeddings @ embeddings.T
    k = len(sim)
    return float((sim.sum() - sim.diagonal().sum()) / (k * (k - 1)))


@pytest.mark.parametrize("encoder_name", ["minilm", "tiny_clip"])
def test_learning_the_context_can_lower_the_mean_class_similarity(encoder_name, request):
    """MS3 Table 1 on a toy problem: pixel-text pairing (eq. 1, tau 0.07) of fixed, random
    "pixel" embeddings, 4 per class, against the prompted class texts; only the context learns.

    MiniLM's pooling leaves the context out, so its prompted texts start no more alike than the
    frozen sentence embeddings of the names (here 0.21 against 0.39; mean-pooling the context
    tokens too gave 0.88, the shared context dominating every class); learning then moves them
    apart (0.12 after 40 steps). CLIP pools its end-of-text token, which reads the context as in
    CLIP itself (the tiny random tower: 0.92 -> 0.88)."""
    encoder = request.getfixturevalue(encoder_name)
    names = ["cat", "dog", "horse", "cow", "car", "bus", "sky", "road"]
    frozen = _mean_off_diagonal_similarity(encoder.encode(names))
    torch.manual_seed(0)
    learner = PromptLearner(encoder=encoder, context_length=8)
    pixels = F.normalize(torch.randn(len(names), 4, learner.dim), dim=-1)
    labels = torch.arange(len(names)).repeat_interleave(4)
    with torch.no_grad():
        before = _mean_off_diagonal_similarity(learner(names))
    optimizer = torch.optim.Adam(learner.parameters(), lr=0.05)
    for _ in range(40):
        logits = pixels.flatten(0, 1) @ learner(names).T / 0.07
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = _mean_off_diagonal_similarity(learner(names))
    if encoder_name == "minilm":
        assert before < frozen, (before, frozen)
    assert after < before - 0.02, (before, after)


def test_factory_unwraps_the_cache_and_rejects_hash(tiny_clip, tmp_path):
    cached = CachedTextEncoder(tiny_clip, EmbeddingCache(tmp_path))
    learner = prompt_learner_for(cached, 3)
    assert learner.transformer is tiny_clip.model and learner.context.shape == (3, 32)
    with pytest.raises(ValueError, match="prompt learning needs labels.encoder=minilm or clip"):
        prompt_learner_for(CachedTextEncoder(HashTextEncoder(), EmbeddingCache(tmp_path)), 3)
    with pytest.raises(ValueError, match="leaves no room"):
        PromptLearner(encoder=tiny_clip, context_length=22)
    with pytest.raises(ValueError, match="'' has no tokens"):
        PromptLearner(encoder=tiny_clip, context_length=1)(["car", ""])
