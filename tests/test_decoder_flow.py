"""Flow-matching decoder: CFM loss and Euler sampler against hand-worked math, codes validation, save/load."""

from __future__ import annotations

import math

import pytest
import torch

from decoders.estimator import EstimatorConfig, UNet1DEstimator
from decoders.flow import (
    ConditionalFlowMatching,
    FlowDecoder,
    FlowDecoderConfig,
    frame_noise,
    time_span,
    validate_codes,
)
from decoders.losses import flow_matching_loss, ot_cfm_path
from decoders.mel import MelConfig
from omni.config import FieldError
from tests.helpers.speech_data import one_thread  # noqa: F401 (fixture: tiny models run on one thread)


def tiny_flow_config(**kw) -> FlowDecoderConfig:
    est = EstimatorConfig(channels=32, n_mid_blocks=2, num_heads=4, attention_window=6)
    base = dict(codebook_sizes=[16] * 8, token_dim=32, encoder_layers=1, encoder_heads=4, encoder_window=3,
                speaker_dim=8, speakers=["a", "b"], estimator=est, mel=MelConfig(n_mels=20))
    base.update(kw)
    return FlowDecoderConfig(**base)


def test_cfm_loss_matches_hand_computed_value():
    # x1 = [1, 2], z = [0.5, -1], t = 0.5, sigma_min = 0:
    #   y = 0.5 z + 0.5 x1 = [0.75, 0.5];  u = x1 - z = [0.5, 3]
    #   toy estimator 2 y = [1.5, 1.0];  per-frame MSE = ((1.5 - 0.5)^2 + (1 - 3)^2) / 2 = 2.5
    x1 = torch.tensor([[[1.0], [2.0]]])  # (B=1, M=2, T=1)
    z = torch.tensor([[[0.5], [-1.0]]])
    mask = torch.ones(1, 1, 1)
    cfm = ConditionalFlowMatching(lambda y, mask, mu, t, spks, cond: 2 * y, sigma_min=0.0)
    out = cfm.compute_loss(x1, mask, torch.zeros_like(x1), t=torch.tensor([0.5]), z=z)
    assert float(out.loss) == pytest.approx(2.5) and float(out.frames) == 1
    # sigma_min = 0.1: y = (1 - 0.9 * 0.5) z + 0.5 x1 = [0.775, 0.45]; u = x1 - 0.9 z = [0.55, 2.9]
    #   2 y = [1.55, 0.9]; MSE = ((1.0)^2 + (-2.0)^2) / 2 = 2.5 again, so use t = 0.2 instead:
    #   y = 0.82 z + 0.2 x1 = [0.61, -0.42]; 2 y = [1.22, -0.84]; err = [0.67, -3.74]
    cfm.sigma_min = 0.1
    out = cfm.compute_loss(x1, mask, torch.zeros_like(x1), t=torch.tensor([0.2]), z=z)
    assert float(out.loss) == pytest.approx((0.67**2 + 3.74**2) / 2, rel=1e-5)


def test_cfm_loss_averages_over_valid_frames_only():
    pred = torch.tensor([[[1.0, 5.0, 9.0]]])  # (1, 1, 3)
    u = torch.zeros(1, 1, 3)
    mask = torch.tensor([[[1.0, 1.0, 0.0]]])
    assert float(flow_matching_loss(pred, u, mask)) == pytest.approx(1 + 25)
    path = ot_cfm_path(torch.ones(1, 1, 3), torch.zeros(1, 1, 3), torch.tensor([0.25]), 0.0)
    assert torch.allclose(path.y, torch.full((1, 1, 3), 0.25)) and torch.allclose(path.u, torch.ones(1, 1, 3))


def exact_velocity(x1: torch.Tensor, sigma_min: float):
    """v(y, t) of the OT conditional path towards x1: (x1 - (1 - s) y) / (1 - (1 - s) t)."""

    def v(y, mask, mu, t, spks, cond):
        t = t.view(-1, 1, 1)
        target = x1.repeat(y.shape[0] // x1.shape[0], 1, 1)  # guidance doubles the batch
        return (target - (1 - sigma_min) * y) / (1 - (1 - sigma_min) * t)

    return v


@pytest.mark.parametrize("schedule,steps", [("linear", 1), ("linear", 5), ("cosine", 7)])
def test_euler_with_exact_velocity_reproduces_the_target(schedule, steps):
    g = torch.Generator().manual_seed(0)
    x1, z = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    mask, mu = torch.ones(2, 1, 5), torch.zeros(2, 3, 5)
    cfm = ConditionalFlowMatching(exact_velocity(x1, 0.0))
    out = cfm.solve_euler(z, time_span(steps, schedule), mask, mu)
    torch.testing.assert_close(out, x1, atol=1e-5, rtol=1e-5)
    # with guidance both branches see the same field, so the guided field is the same
    out = cfm.solve_euler(z, time_span(steps, schedule), mask, mu, guidance_scale=0.7)
    torch.testing.assert_close(out, x1, atol=1e-5, rtol=1e-5)
    # sigma_min > 0: one step lands on the path's end point x1 + sigma_min z
    cfm = ConditionalFlowMatching(exact_velocity(x1, 0.1), sigma_min=0.1)
    torch.testing.assert_close(cfm.solve_euler(z, time_span(1, "linear"), mask, mu), x1 + 0.1 * z)


def test_guidance_combines_conditional_and_unconditional_velocity():
    # estimator returns mu (conditional: mu = 2; unconditional: mu zeroed -> 0) plus 1
    cfm = ConditionalFlowMatching(lambda y, mask, mu, t, spks, cond: mu + 1)
    x = torch.zeros(1, 1, 2)
    v = cfm.velocity(x, torch.ones(1, 1, 2), torch.full((1, 1, 2), 2.0), torch.tensor(0.0), None, None, 0.5)
    assert torch.allclose(v, torch.full((1, 1, 2), 1.5 * 3 - 0.5 * 1))  # (1 + w) 3 - w 1 = 4


def test_time_span_schedules():
    assert torch.allclose(time_span(4, "linear"), torch.tensor([0, 0.25, 0.5, 0.75, 1.0]))
    cos = time_span(2, "cosine")
    assert torch.allclose(cos, torch.tensor([0.0, 1 - math.cos(math.pi / 4), 1.0]), atol=1e-6)


def test_frame_noise_is_a_function_of_the_absolute_frame():
    whole = frame_noise(3, -70, 300, 4)
    assert torch.equal(frame_noise(3, 0, 100, 4), whole[:, 70:170])
    assert torch.equal(frame_noise(3, 130, 7, 4), whole[:, 200:207])
    assert not torch.equal(frame_noise(4, 0, 100, 4), whole[:, 70:170])


def test_codes_validation_gives_clear_errors():
    sizes = [16] * 8
    assert validate_codes(torch.randint(0, 16, (5, 8), dtype=torch.int16), sizes).dtype == torch.int64
    bad = torch.zeros(5, 8, dtype=torch.long)
    bad[3, 6] = 16
    with pytest.raises(ValueError, match=r"code 16 at frame 3, codebook 6 is out of range \[0, 16\)"):
        validate_codes(bad, sizes)
    with pytest.raises(ValueError, match="out of range"):
        validate_codes(-torch.ones(2, 8, dtype=torch.long), sizes)
    with pytest.raises(ValueError, match=r"expected 8 codebooks .* got 4"):
        validate_codes(torch.zeros(5, 4, dtype=torch.long), sizes)
    with pytest.raises(ValueError, match="empty code sequence"):
        validate_codes(torch.zeros(0, 8, dtype=torch.long), sizes)
    with pytest.raises(ValueError, match="must be integers"):
        validate_codes(torch.zeros(3, 8), sizes)
    with pytest.raises(ValueError, match=r"expected a \(T, 8\) array"):
        validate_codes(torch.zeros(8, dtype=torch.long), sizes)


def test_config_validation_names_the_field():
    with pytest.raises(FieldError, match="whole number"):
        tiny_flow_config(token_rate=12.0)  # 50 frames/s / 12 tokens/s is not an integer
    with pytest.raises(FieldError, match="speaker_dim"):
        tiny_flow_config(speaker_dim=0)
    with pytest.raises(FieldError) as e:
        FlowDecoderConfig(codebook_sizes=[])
    assert e.value.field == "codebook_sizes"


def test_estimator_is_local_within_its_receptive_field():
    """Windowed attention + per-frame norms: a change at frame 0 leaves far frames untouched (what streaming relies on)."""
    torch.manual_seed(0)
    est = UNet1DEstimator(4, EstimatorConfig(channels=16, n_mid_blocks=1, num_heads=2, attention_window=2)).eval()
    x, mu = torch.randn(1, 4, 60), torch.randn(1, 4, 60)
    mask, t = torch.ones(1, 1, 60), torch.tensor([0.3])
    a = est(x, mask, mu, t)
    x2 = x.clone()
    x2[..., 0] += 5.0
    b = est(x2, mask, mu, t)
    assert (a - b)[..., :3].abs().max() > 1e-3  # nearby frames see it
    # 3 blocks x (2 convs k=3 + 1 attention layer window 2) + final conv: at most 3 * 4 + 1 = 13 frames
    torch.testing.assert_close(a[..., 14:], b[..., 14:])
    # the down-sampling variant handles odd lengths and keeps the output length
    est2 = UNet1DEstimator(4, EstimatorConfig(channels=16, n_mid_blocks=1, num_heads=2, downsample=True))
    assert est2(x[..., :59], mask[..., :59], mu[..., :59], t).shape == (1, 4, 59)


def test_flow_decoder_trains_generates_and_round_trips(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_flow_config()
    model = FlowDecoder(cfg)
    codes = torch.randint(0, 16, (2, 6, 8))
    code_mask = torch.tensor([[1.0] * 6, [1.0] * 4 + [0.0] * 2])
    mel_mask = code_mask.repeat_interleave(4, dim=1).unsqueeze(1)  # (2, 1, 24)
    mel = torch.randn(2, 20, 24) * mel_mask
    prompt = torch.tensor([5, 0])
    out = model(mel, mel_mask, codes, code_mask, torch.tensor([1, 2]), prompt)
    assert float(out.frames) == 24 + 16 - 5  # valid frames minus prompt frames
    out.loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "speaker_table" not in n)
    # a few steps on one batch lower the loss (fixed t and noise so only the model changes)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.cfm.cfg_dropout = 0.0
    t, z = torch.rand(2), torch.randn(2, 20, 24)

    def loss() -> torch.Tensor:
        mu = model.encoder(codes, code_mask)
        return model.cfm.compute_loss(mel, mel_mask, mu, t=t, z=z).loss

    first = float(loss().detach())
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < 0.5 * first
    model.eval()
    gen = model.generate(codes[0], speaker=torch.tensor(1), n_steps=3)
    assert gen.shape == (20, 24) and torch.isfinite(gen).all()
    with_prompt = model.generate(codes[0, 2:], prompt_codes=codes[0, :2], prompt_mel=mel[0, :, :8], n_steps=3)
    assert with_prompt.shape == (20, 16)
    with pytest.raises(ValueError, match=r"prompt_mel must have shape \(20, 8\)"):
        model.generate(codes[0, 2:], prompt_codes=codes[0, :2], prompt_mel=mel[0, :, :7])
    model.save_pretrained(tmp_path / "flow")
    again = FlowDecoder.from_pretrained(tmp_path / "flow")
    assert again.cfg == cfg
    torch.testing.assert_close(again.generate(codes[0], n_steps=3, seed=5), model.generate(codes[0], n_steps=3, seed=5))
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        FlowDecoder.from_pretrained(tmp_path / "missing")


def test_prior_loss_is_the_mean_squared_error_of_mu_to_the_mel_outside_the_prompt():
    """prior_weight w adds w * sum over scored frames of mean_m (mu - mel)^2 (Matcha-TTS's prior loss) to the CFM
    loss; the CFM part itself is unchanged (same seeds, evaluation mode: no condition dropout)."""
    codes = torch.randint(0, 16, (2, 6, 8), generator=torch.Generator().manual_seed(0))
    code_mask = torch.tensor([[1.0] * 6, [1.0] * 4 + [0.0] * 2])
    mel_mask = code_mask.repeat_interleave(4, dim=1).unsqueeze(1)  # (2, 1, 24)
    mel = torch.randn(2, 20, 24, generator=torch.Generator().manual_seed(1)) * mel_mask
    prompt = torch.tensor([5, 0])
    torch.manual_seed(0)
    plain = FlowDecoder(tiny_flow_config()).eval()
    torch.manual_seed(0)
    with_prior = FlowDecoder(tiny_flow_config(prior_weight=2.0)).eval()
    torch.manual_seed(3)
    a = plain(mel, mel_mask, codes, code_mask, torch.tensor([1, 2]), prompt)
    torch.manual_seed(3)
    b = with_prior(mel, mel_mask, codes, code_mask, torch.tensor([1, 2]), prompt)
    mu = plain.encoder(codes, code_mask)  # (2, 20, 24)
    scored = mel_mask.clone()
    scored[0, :, :5] = 0  # the prompt frames of clip 0 are not scored
    by_hand = float((((mu - mel) ** 2).mean(1, keepdim=True) * scored).sum())
    assert float(b.cfm) == pytest.approx(float(a.loss), rel=1e-6) and a.prior is None
    assert float(b.prior) == pytest.approx(by_hand, rel=1e-5)
    assert float(b.loss) == pytest.approx(float(a.loss) + 2.0 * by_hand, rel=1e-5)


def test_condition_levels_reads_only_the_first_levels():
    torch.manual_seed(0)
    codes = torch.randint(0, 16, (1, 6, 8))
    noisy = codes.clone()
    noisy[..., 3:] = torch.randint(0, 16, (1, 6, 5))  # other fine levels, the coarse ones kept
    mask = torch.ones(1, 6)
    coarse = FlowDecoder(tiny_flow_config(condition_levels=3)).encoder.eval()
    torch.testing.assert_close(coarse(codes, mask), coarse(noisy, mask))
    every = FlowDecoder(tiny_flow_config()).encoder.eval()
    assert not torch.allclose(every(codes, mask), every(noisy, mask))
    coarser = codes.clone()
    coarser[..., 2] = (coarser[..., 2] + 1) % 16  # a read level changes the condition
    assert not torch.allclose(coarse(codes, mask), coarse(coarser, mask))
    with pytest.raises(FieldError, match="condition_levels"):
        tiny_flow_config(condition_levels=9)
