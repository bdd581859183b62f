"""Vision branch: native-resolution token counts, 1 fps / 32-frame video sampling, features in the sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

from omni.config import FieldError
from omni.model import Image, Message, ModelLoadError, Text, Video, collate
from omni.model.tiny import tiny_model
from omni.model.vision import VisionBranch, VisionConfig, vision_hf_config
from omni.model.vision_inputs import VisionProcessor, fit_within, load_video, sample_frame_indices
from tests.helpers.threads import one_torch_thread  # noqa: F401


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen2")


def _image(h: int, w: int, seed: int = 0) -> PILImage.Image:
    rng = np.random.default_rng(seed)
    return PILImage.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_odd_sized_image_token_count(model):
    proc = VisionProcessor(model.cfg.vision)
    inputs = proc.images([_image(333, 517)])
    # smart_resize: round(333/28)*28 = 336, round(517/28)*28 = 504 -> 24 x 36 patches of 14 px -> 12 x 18 tokens
    assert inputs.grid_thw.tolist() == [[1, 24, 36]]
    assert inputs.pixel_values.shape == (24 * 36, 3 * 2 * 14 * 14)
    feats = model.vision(inputs.pixel_values, inputs.grid_thw)
    assert feats.shape == (12 * 18, model.backbone.config.hidden_size)
    assert inputs.num_tokens() == [216]


def test_large_image_is_capped_by_max_pixels():
    cfg = VisionConfig(max_pixels=28 * 28 * 64)
    inputs = VisionProcessor(cfg).images([_image(1000, 3000)])
    t, h, w = inputs.grid_thw[0].tolist()
    assert t == 1 and h * w // 4 <= 64 and h % 2 == 0 and w % 2 == 0
    assert abs((w / h) - 3.0) < 0.5  # aspect ratio kept


def test_video_of_40_frames_is_capped_at_32(model):
    frames = np.stack([np.full((56, 84, 3), i * 6, dtype=np.uint8) for i in range(40)])  # 40 s at 1 fps
    assert len(sample_frame_indices(40, fps=1.0, target_fps=1.0, max_frames=32)) == 32
    inputs = VisionProcessor(model.cfg.vision).video(frames, fps=1.0)
    assert inputs.grid_thw.tolist() == [[16, 4, 6]]  # 32 frames / temporal patch 2; 56x84 px -> 4x6 patches
    feats = model.vision(inputs.pixel_values, inputs.grid_thw)
    assert feats.shape[0] == 16 * 4 * 6 // 4 == inputs.num_tokens()[0]


def test_video_sampled_at_one_frame_per_second():
    # 4 s at 10 fps: frames at t = 0, 1, 2, 3 s
    assert sample_frame_indices(40, fps=10.0) == [0, 10, 20, 30]
    # 100 s at 25 fps: capped, spread over the whole clip
    idx = sample_frame_indices(2500, fps=25.0)
    assert len(idx) == 32 and idx[0] == 0 and idx[-1] == 2499
    frames = np.zeros((40, 56, 56, 3), dtype=np.uint8)
    frames[10] = 255  # the second sampled frame is white
    inputs = VisionProcessor(VisionConfig()).video(frames, fps=10.0)
    assert inputs.grid_thw.tolist() == [[2, 4, 4]]
    # patch layout (C, t, 14, 14): in the first temporal patch, frame 0 (black) then frame 10 (white)
    first = inputs.pixel_values[0].reshape(3, 2, 14, 14)
    assert first[:, 1].mean() > first[:, 0].mean() + 1.0


def test_video_frames_fit_within_560x1120():
    assert fit_within(1080, 1920, (560, 1120)) == pytest.approx((560, 995.555), abs=1e-2)
    frames = np.zeros((2, 1080, 1920, 3), dtype=np.uint8)
    t, h, w = VisionProcessor(VisionConfig()).video(frames, fps=1.0).grid_thw[0].tolist()
    assert (h * 14, w * 14) == (560, 1008)  # short side <= 560, long side <= 1120, multiples of 28
    tall = np.zeros((2, 2000, 300, 3), dtype=np.uint8)
    _, h, w = VisionProcessor(VisionConfig()).video(tall, fps=1.0).grid_thw[0].tolist()
    assert h * 14 <= 1120 and w * 14 <= 560


def test_video_file_is_decoded_at_one_fps(tmp_path):
    import imageio_ffmpeg

    path = tmp_path / "clip.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (64, 48), fps=5, macro_block_size=16)
    writer.send(None)
    for i in range(15):  # 3 s
        writer.send(np.full((48, 64, 3), i * 15, dtype=np.uint8).tobytes())
    writer.close()
    cfg = VisionConfig()
    frames, fps = load_video(path, cfg)
    assert frames.shape[0] == 3 and fps == 1.0
    assert frames[0].mean() < frames[1].mean() < frames[2].mean()
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        load_video(tmp_path / "missing.mp4", cfg)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="bad.mp4"):
        load_video(tmp_path / "bad.mp4", cfg)


def test_image_features_replace_placeholders(model):
    proc = VisionProcessor(model.cfg.vision)
    img_a, img_b = proc.images([_image(60, 90, 1)]), proc.images([_image(60, 90, 2)])
    msgs = lambda im: [Message("user", [Text("Look:"), Image(im), Text("What is it?")])]  # noqa: E731
    ex_a, ex_b = model.encode(msgs(img_a)), model.encode(msgs(img_b))
    n = img_a.num_tokens()[0]
    assert int((ex_a.input_ids == model.token_ids.image).sum()) == n
    first = int((ex_a.input_ids == model.token_ids.image).nonzero()[0])
    with torch.no_grad():
        la, lb = model(collate([ex_a], 0)).text_logits, model(collate([ex_b], 0)).text_logits
    torch.testing.assert_close(la[:, :first], lb[:, :first])  # causal: nothing before the image changes
    assert (la[:, first:] - lb[:, first:]).abs().amax() > 1e-4  # the features are used
    # the placeholder embeddings are exactly the projected vision features
    emb = model.embed(collate([ex_a], 0))
    feats = model.vision(img_a.pixel_values, img_a.grid_thw)
    torch.testing.assert_close(emb[0, first:first + n], feats)


def test_video_in_conversation(model):
    frames = np.random.default_rng(0).integers(0, 256, (6, 56, 56, 3), dtype=np.uint8)
    vid = VisionProcessor(model.cfg.vision).video(frames, fps=2.0)  # 3 s -> 3 frames -> padded to 4 -> t=2
    ex = model.encode([Message("user", [Video(vid), Text("What happens?")])], add_generation_prompt=True)
    assert int((ex.input_ids == model.token_ids.video).sum()) == 2 * 4 * 4 // 4
    with torch.no_grad():
        out = model(collate([ex], 0))
    assert torch.isfinite(out.text_logits).all()


def test_placeholder_count_mismatch_is_a_clear_error(model):
    img = VisionProcessor(model.cfg.vision).images([_image(56, 56)])
    batch = collate([model.encode([Message("user", [Image(img)])])], 0)
    batch.image_grid_thw = torch.tensor([[1, 4, 8]])
    batch.pixel_values = torch.cat([batch.pixel_values, batch.pixel_values])
    with pytest.raises(ValueError, match=r"4 <\|image\|> placeholders but 8 vision tokens"):
        model(batch)
    no_vision = tiny_model("qwen2", vision=False)
    with pytest.raises(ValueError, match="no vision branch"):
        no_vision(collate([no_vision.encode([Message("user", [Image(img)])])], 0))


def test_vision_tower_loads_from_local_qwen2_vl_checkpoint(tmp_path):
    hf = Qwen2VLConfig(
        vision_config=dict(depth=2, embed_dim=32, num_heads=2, mlp_ratio=2, hidden_size=64),
        text_config=dict(hidden_size=64, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=100, rope_parameters={"rope_type": "default",
                         "mrope_section": [2, 3, 3], "rope_theta": 10000.0}),
    )
    vl = Qwen2VLForConditionalGeneration(hf)
    vl.save_pretrained(tmp_path / "vl")
    cfg = VisionConfig(path=str(tmp_path / "vl"))
    branch = VisionBranch(vision_hf_config(cfg, llm_hidden_size=64))
    branch.load_pretrained(cfg.path)
    theirs = vl.model.visual.state_dict()
    for name, value in branch.tower.state_dict().items():
        torch.testing.assert_close(value, theirs[name], msg=name)
    # another LLM width: the encoder loads, the projector is re-initialised
    other = VisionBranch(vision_hf_config(cfg, llm_hidden_size=48))
    other.load_pretrained(cfg.path)
    torch.testing.assert_close(other.tower.blocks[0].attn.qkv.weight, vl.model.visual.blocks[0].attn.qkv.weight)
    assert other.tower.merger.mlp[2].weight.shape == (48, 128)
    with pytest.raises(ModelLoadError, match="not a local directory"):
        vision_hf_config(VisionConfig(path=str(tmp_path / "nope")), 64)
    with pytest.raises(ValueError, match="vision.temporal_patch_size: 1 differs from the checkpoint's 2"):
        vision_hf_config(VisionConfig(path=cfg.path, temporal_patch_size=1), 64)


def test_bad_vision_config_values_name_the_field():
    with pytest.raises(FieldError, match="video_max_size.*multiples of .* 28"):
        VisionConfig(video_max_size=(500, 1120))
    with pytest.raises(FieldError, match="embed_dim"):
        VisionConfig(embed_dim=30, num_heads=4)


def test_generation_from_an_image_prompt_cache_equals_no_cache(model):
    img = VisionProcessor(model.cfg.vision).images([_image(70, 100, 4)])
    prompt = model.encode([Message("user", [Image(img), Text("Describe it.")])], add_generation_prompt=True)
    cached = model.generate(prompt, max_new_tokens=12)
    plain = model.generate(prompt, max_new_tokens=12, use_cache=False)
    assert torch.equal(cached.tokens, plain.tokens)
    other = model.encode([Message("user", [Image(VisionProcessor(model.cfg.vision).images([_image(70, 100, 5)])),
                                            Text("Describe it.")])], add_generation_prompt=True)
    batch = model.generate([prompt, other], max_new_tokens=12)
    assert torch.equal(batch.tokens[0, :cached.tokens.shape[1]], cached.tokens[0])
