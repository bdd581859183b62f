"""Serving test fixtures: one tiny random bundle and one live server (``omni serve`` in a subprocess on 127.0.0.1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]

#: Overrides of the live server: short replies (tiny random model), small limits to test them.
SERVER_OVERRIDES = ["default_max_tokens=40", "max_tokens=64", "torch_threads=1", "max_audio_seconds=5",
                    "max_request_bytes=1500000", "concurrency=2", "queue_timeout_s=120", "max_requests_per_client=16"]


@pytest.fixture(scope="session")
def tiny_bundle_dir(tmp_path_factory) -> Path:
    import torch

    from omni.bundle import tiny_bundle

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return tiny_bundle(tmp_path_factory.mktemp("serve") / "bundle")
    finally:
        torch.set_num_threads(before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tiny_bundle_dir, tmp_path_factory):
    """Base URL of a live server; its log is printed when it fails to start."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False", "OMNI_API_KEY": ""}
    cmd = [sys.executable, "-c", "from omni.cli.main import app; app()", "serve", "--checkpoint",
           str(tiny_bundle_dir), "--port", str(port), *SERVER_OVERRIDES]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"server did not start within 120 s:\n{log.read_text()[-3000:]}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def speech_like(seconds: float = 2.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced-sounding test signal (harmonics with a wobbling pitch and an envelope), float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 1.5 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    return (0.3 * x / np.abs(x).max() + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="session")
def wav_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "question.wav"
    sf.write(path, speech_like(), 16000)
    return path


def check_audio(samples: np.ndarray, sr: int, expected_sr: int = 24000) -> None:
    """Audio validity: rate, non-empty, finite, not all zero."""
    assert sr == expected_sr
    assert samples.ndim == 1 and len(samples) > 0
    assert np.isfinite(samples).all() and np.abs(samples).max() > 0
