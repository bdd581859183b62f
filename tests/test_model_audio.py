"""Audio embedding (sum of per-codebook tables, projected) and the depth-transformer audio head."""

from __future__ import annotations

import pytest
import torch

from omni.model import Audio, Message, Text, collate
from omni.model.audio_embed import AudioEmbedding, AudioEmbeddingConfig
from omni.model.audio_head import AudioHead, AudioHeadConfig
from omni.model.tiny import TINY_CODEBOOKS, tiny_model
from tests.helpers.threads import one_torch_thread  # noqa: F401


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen2", vision=False)


def _codes(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, v, (n,), generator=g) for v in TINY_CODEBOOKS], dim=-1)  # (n, 8)


def test_audio_embedding_is_projected_sum_of_tables():
    emb = AudioEmbedding(AudioEmbeddingConfig(embed_dim=8), [5, 3, 4], out_dim=6)
    codes = torch.tensor([[4, 2, 0], [1, 0, 3]])
    expected = []
    for row in codes:
        summed = emb.tables[0].weight[row[0]] + emb.tables[1].weight[row[1]] + emb.tables[2].weight[row[2]]
        expected.append(summed @ emb.proj.weight.T + emb.proj.bias)
    torch.testing.assert_close(emb(codes), torch.stack(expected))
    assert emb(codes.unsqueeze(0)).shape == (1, 2, 6)


def test_audio_head_teacher_forcing_matches_step_by_step():
    torch.manual_seed(0)
    head = AudioHead(AudioHeadConfig(num_layers=3, hidden_size=32, num_heads=2, intermediate_size=64),
                     TINY_CODEBOOKS, llm_hidden_size=16).eval()
    hidden = torch.randn(4, 16)
    with torch.no_grad():
        # greedy generation gives codes; teacher forcing on those codes must give the same per-level logits
        seen = []

        def pick(level, logits):
            seen.append(logits.clone())
            return logits.argmax(-1)

        codes = head.generate(hidden, pick, use_cache=True)
        forced = head(hidden, codes)
        assert codes.shape == (4, 8)
        for k in range(8):
            assert forced[k].shape == (4, TINY_CODEBOOKS[k])
            torch.testing.assert_close(forced[k], seen[k], atol=1e-5, rtol=1e-5)
            assert (codes[:, k] < TINY_CODEBOOKS[k]).all()
        assert torch.equal(head.generate(hidden, use_cache=False), codes)  # no-cache path agrees
        # level k's logits depend on earlier codes only (causal over levels)
        other = codes.clone()
        other[:, 5] = (other[:, 5] + 1) % TINY_CODEBOOKS[5]
        changed = head(hidden, other)
        for k in range(6):
            torch.testing.assert_close(changed[k], forced[k])
        assert (changed[6] - forced[6]).abs().amax() > 1e-5


@pytest.mark.parametrize("model_type", ["qwen2", "llama", "qwen3"])
def test_direct_layer_steps_equal_the_model_forward(model_type, monkeypatch):
    """The cached path that calls the decoder layers directly gives the logits of the full teacher-forced
    forward and the codes of the model-forward cached path, for each supported architecture."""
    torch.manual_seed(1)
    head = AudioHead(AudioHeadConfig(num_layers=2, hidden_size=32, num_heads=4, intermediate_size=48,
                                     model_type=model_type), TINY_CODEBOOKS, llm_hidden_size=16).eval()
    assert head._layers_callable()
    hidden = torch.randn(3, 16)
    seen = []

    def pick(level, logits):
        seen.append(logits.clone())
        return torch.multinomial(logits.softmax(-1), 1, generator=g).squeeze(-1)  # sampled: any code path

    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        codes = head.generate(hidden, pick)
        forced = head(hidden, codes)
        for k in range(8):
            torch.testing.assert_close(seen[k], forced[k], atol=1e-5, rtol=1e-5)
        monkeypatch.setattr(AudioHead, "_layers_callable", lambda self: False)  # the model's own forward
        g = torch.Generator().manual_seed(0)
        assert torch.equal(head.generate(hidden, pick), codes)


def test_audio_frames_replace_placeholders(model):
    a, b = _codes(6, 1), _codes(6, 2)
    msgs = lambda c: [Message("user", [Text("Listen:"), Audio(c)]), Message("assistant", "Ok.")]  # noqa: E731
    ex_a, ex_b = model.encode(msgs(a)), model.encode(msgs(b))
    frames = (ex_a.input_ids == model.token_ids.audio).nonzero().squeeze(-1)
    assert len(frames) == 6 and (frames.diff() == 1).all()
    first = int(frames[0])
    assert ex_a.input_ids[first - 1] == model.token_ids.audio_start  # user speech: not the modality switch
    assert ex_a.input_ids[first + 6] == model.token_ids.audio_end
    emb = model.embed(collate([ex_a], 0))
    torch.testing.assert_close(emb[0, frames], model.audio_embed(a))
    with torch.no_grad():
        la, lb = model(collate([ex_a], 0)).text_logits, model(collate([ex_b], 0)).text_logits
    torch.testing.assert_close(la[:, :first], lb[:, :first])
    assert (la[:, first:] - lb[:, first:]).abs().amax() > 1e-4


def test_audio_head_reads_the_hidden_state_before_each_target_frame(model):
    reply = _codes(3, 3)
    ex = model.encode([Message("user", "Say hi."), Message("assistant", [Text("Hi."), Audio(reply)])])
    batch = collate([ex, ex], model.token_ids.pad)
    with torch.no_grad():
        out = model(batch)
        pos = (ex.input_ids == model.token_ids.audio).nonzero().squeeze(-1)
        assert out.audio_frame_index.tolist() == [[r, int(p)] for r in range(2) for p in pos]
        expected = model.audio_head(out.hidden_states[0, pos - 1], reply)
    for k in range(8):
        torch.testing.assert_close(out.audio_logits[k][:3], expected[k])
        torch.testing.assert_close(out.audio_logits[k][3:], expected[k])


def test_frame_count_mismatch_is_a_clear_error(model):
    ex = model.encode([Message("user", [Audio(_codes(4))])])
    batch = collate([ex], 0)
    batch.audio_codes = batch.audio_codes[:3]
    batch.audio_target = batch.audio_target[:3]
    with pytest.raises(ValueError, match=r"4 <\|audio\|> placeholders but 3 audio frames"):
        model(batch)
