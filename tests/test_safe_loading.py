"""Safe loading: no pickle anywhere the project loads, checksums on every saved tensor file, tampering refused."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState

from omni.integrity import INDEX, IntegrityError, verify_checksums, write_checksums
from tests.helpers.threads import one_torch_thread  # noqa: F401
from tests.helpers.toy_training import ToyTask, final_params, make_trainer

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("omni", "audio_tokenizer", "decoders", "serve", "bench")


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            yield owner, name, {k.arg: k.value for k in node.keywords}, node


def test_no_pickle_and_no_remote_code_in_the_source():
    """Every torch.load says weights_only=True, np.load allow_pickle=False; no pickle module, no trust_remote_code."""
    problems = []
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    assert len(files) > 100
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib") for n in names):
                    problems.append(f"{where}:{node.lineno}: imports a pickle module")
        for owner, name, kw, node in _calls(tree):
            const = {k: v.value for k, v in kw.items() if isinstance(v, ast.Constant)}
            if owner == "torch" and name == "load" and const.get("weights_only") is not True:
                problems.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
            if owner == "np" and name == "load" and const.get("allow_pickle") is not False:
                problems.append(f"{where}:{node.lineno}: np.load without allow_pickle=False")
            if "trust_remote_code" in kw and const.get("trust_remote_code") is not False:
                problems.append(f"{where}:{node.lineno}: trust_remote_code enabled")
            if name == "from_pretrained" and "local_files_only" in kw and "use_safetensors" not in kw \
                    and owner not in ("AutoConfig", "AutoTokenizer", "WhisperProcessor"):
                problems.append(f"{where}:{node.lineno}: a transformers model loaded without use_safetensors=True")
    assert not problems, "\n".join(problems)


def _flip_byte(path: Path, offset: int = -5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_checksum_index_detects_each_kind_of_damage(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "a.safetensors").write_bytes(b"x" * 100)
    (d / "b.bin").write_bytes(b"y" * 50)
    (d / "config.json").write_text("{}")
    write_checksums(d)
    index = json.loads((d / INDEX).read_text())
    assert set(index["files"]) == {"a.safetensors", "b.bin"}  # JSON configs are not tensor files
    import hashlib
    assert index["files"]["a.safetensors"]["sha256"] == hashlib.sha256(b"x" * 100).hexdigest()
    assert verify_checksums(d)
    cases = {
        "sha256 does not match": lambda: _flip_byte(d / "a.safetensors"),
        "truncated": lambda: _truncate(d / "b.bin"),
        "missing": lambda: (d / "a.safetensors").unlink(),
        "not listed": lambda: (d / "evil.pkl").write_bytes(b"\x80\x04."),
        "not a valid checksum index": lambda: (d / INDEX).write_text("{not json"),
    }
    backup = tmp_path / "backup"
    shutil.copytree(d, backup)
    for message, damage in cases.items():
        shutil.rmtree(d)
        shutil.copytree(backup, d)
        damage()
        with pytest.raises(IntegrityError, match=message):
            verify_checksums(d)
    (d / INDEX).unlink()
    assert verify_checksums(d) is False  # no index: loads as before (older directories)
    with pytest.raises(IntegrityError, match="missing"):
        verify_checksums(d, required=True)


def _train(out: Path, **kw):
    AcceleratorState._reset_state(reset_partial_state=True)
    trainer = make_trainer(out, **kw)
    return trainer, trainer.fit()


def _crash_after_first_checkpoint(out: Path) -> Path:
    """An 8-step run that dies during step 6: checkpoints/step-00000004 is left to resume from."""
    def crash(calls):
        if calls == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(out, max_steps=8, save_every=4, task=ToyTask(on_call=crash))
    return out / "checkpoints" / "step-00000004"


def test_training_checkpoints_have_checksums_json_schedulers_and_load_without_unpickling(tmp_path, monkeypatch):
    ckpt = _crash_after_first_checkpoint(tmp_path / "run")
    names = {p.name for p in ckpt.iterdir()}
    assert {INDEX, "schedulers.json", "model.safetensors", "optimizer.bin"} <= names
    assert not any(n.startswith("custom_checkpoint") for n in names)  # accelerate pickles custom states
    assert json.loads((ckpt / "schedulers.json").read_text())["main"]["last_epoch"] == 4
    assert verify_checksums(ckpt, required=True)

    real_load = torch.load
    seen = []

    def guarded(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        assert kwargs.get("weights_only") is True, f"torch.load without weights_only=True: {args[:1]}"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", guarded)
    trainer, res = _train(tmp_path / "run", max_steps=8, save_every=4)
    assert res.complete and res.step == 8 and seen  # resumed at 4 through weights-only loads
    # the resumed run equals an uninterrupted one: the JSON scheduler state was restored
    monkeypatch.setattr(torch, "load", real_load)
    ref, _ = _train(tmp_path / "ref", max_steps=8, save_every=4)
    for k, v in final_params(ref).items():
        torch.testing.assert_close(final_params(trainer)[k], v, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("damage,file,message", [
    ("flip", "model.safetensors", "sha256 does not match"),
    ("truncate", "optimizer.bin", "truncated"),
    ("flip", "random_states_0.pkl", "sha256 does not match"),
])
def test_a_damaged_checkpoint_is_refused_naming_the_file(tmp_path, damage, file, message):
    target = _crash_after_first_checkpoint(tmp_path / "run") / file
    (_flip_byte if damage == "flip" else _truncate)(target)
    with pytest.raises(IntegrityError, match=message) as err:
        _train(tmp_path / "run", max_steps=8, save_every=4)
    assert str(target) in str(err.value)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from omni.bundle import tiny_bundle

    return tiny_bundle(tmp_path_factory.mktemp("safe") / "bundle")


@pytest.mark.parametrize("part", ["model", "audio_tokenizer", "flow", "vocoder"])
def test_saved_models_carry_checksums_and_tampering_is_refused(bundle, tmp_path, part):
    from audio_tokenizer import AudioTokenizer
    from decoders.flow import FlowDecoder
    from decoders.vocoder import HiFiGANVocoder
    from omni.model import OmniModel

    loader = {"model": OmniModel.from_pretrained, "audio_tokenizer": AudioTokenizer.from_pretrained,
              "flow": FlowDecoder.from_pretrained, "vocoder": HiFiGANVocoder.from_pretrained}[part]
    src = bundle / part
    assert verify_checksums(src, required=True)
    loader(src)  # the intact copy loads
    for damage, message in ((_flip_byte, "sha256 does not match"), (_truncate, "truncated")):
        d = tmp_path / f"{part}-{damage.__name__}"
        shutil.copytree(src, d)
        weights = sorted(d.glob("*.safetensors"))[0]
        damage(weights)
        with pytest.raises(IntegrityError, match=message) as err:
            loader(d)
        assert weights.name in str(err.value)
