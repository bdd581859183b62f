"""Codes shards: write, reference from a manifest, read back."""

from __future__ import annotations

import pytest
import torch

from omni.data.codes import CodesReader, write_codes_shard
from omni.data.manifest import CodesRef, ManifestRow, load_manifest, write_manifest


def test_codes_round_trip_through_a_manifest(tmp_path):
    a = torch.randint(0, 1024, (17, 8))
    b = torch.randint(0, 70000, (3, 8))  # too big for int16: stored as int32
    write_codes_shard(tmp_path / "codes" / "shard-00000.safetensors", {"a": a, "b": b}, {"frame_rate": "12.5"})
    rows = [ManifestRow(id="x", task="asr", audio="x.wav", text="X.",
                        codes=CodesRef("codes/shard-00000.safetensors", "a"))]
    write_manifest(tmp_path / "m.jsonl", rows)
    row = load_manifest(tmp_path / "m.jsonl")[0]
    reader = CodesReader(tmp_path / "m.jsonl")
    assert torch.equal(reader.load(row.codes), a) and reader.load(row.codes).dtype == torch.int64
    assert torch.equal(reader.load(CodesRef("codes/shard-00000.safetensors", "b")), b)
    with pytest.raises(KeyError, match="no codes for key 'zz'"):
        reader.load(CodesRef("codes/shard-00000.safetensors", "zz"))
    with pytest.raises(FileNotFoundError, match="omni data tokenize"):
        reader.load(CodesRef("codes/missing.safetensors", "a"))
    with pytest.raises(ValueError, match="integer tensor"):
        write_codes_shard(tmp_path / "bad.safetensors", {"f": torch.zeros(3, 8)})
