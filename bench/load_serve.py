"""Bounded load test of ``omni serve`` on loopback: N clients for T seconds, valid and invalid requests mixed.

    PYTHONPATH=. python bench/load_serve.py --clients 8 --seconds 20 --rounds 3 [--checkpoint DIR] [--device cpu|cuda]

Starts the server in a subprocess on 127.0.0.1 (a random tiny bundle unless ``--checkpoint``: plumbing
figures, not a trained model's speed), warms it up, reads its RSS (``/proc/PID/status``), then runs N
client threads for T seconds, R times, reading the RSS after each round (growth across rounds = a leak). Each client loops over a fixed mix of requests:

* valid: text chat (``max_tokens`` 16), speech chat (audio in, speech + text out), transcription;
* invalid: malformed JSON, unknown model, base64 that is not audio, audio longer than the limit,
  a body over ``max_request_bytes``, a client file path as audio, a wrong API key.

It reports p50 / p95 latency per kind, the HTTP statuses per kind (any 5xx on a valid request is a
failure), the server's RSS after warm-up, after each round and 5 s after the load, and exits 1 when a valid
request got a 5xx or an invalid one got anything but a 4xx. Absolute latencies depend on machine load.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
KEY = "load-test-key"


def speech_like(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 1.5 * t)
    x = sum(np.sin(k * 2 * np.pi * np.cumsum(f0) / sr) / k for k in range(1, 6))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speech_like(seconds), 16000, format="WAV")
    return buf.getvalue()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def requests_mix(max_bytes: int) -> list[tuple[str, bool, dict]]:
    """(kind, valid, httpx request kwargs) of one client's loop."""
    ok_audio = base64.b64encode(wav(1.0)).decode()
    long_audio = base64.b64encode(wav(7.0)).decode()  # server limit: 5 s
    chat = {"model": "omni", "max_tokens": 16, "messages": [{"role": "user", "content": "What is two plus two?"}]}
    speech = {"model": "omni", "max_tokens": 24, "modalities": ["text", "audio"], "audio": {"voice": None, "format": "wav"},
              "messages": [{"role": "user", "content": [{"type": "input_audio",
                                                         "input_audio": {"data": ok_audio, "format": "wav"}}]}]}
    speech["audio"].pop("voice")

    def audio_chat(data: str) -> dict:
        return {"model": "omni", "max_tokens": 8, "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}]}]}

    post = "/v1/chat/completions"
    return [
        ("chat_text", True, {"method": "POST", "url": post, "json": chat}),
        ("bad_json", False, {"method": "POST", "url": post, "content": b"{not json",
                             "headers": {"content-type": "application/json"}}),
        ("chat_speech", True, {"method": "POST", "url": post, "json": speech}),
        ("unknown_model", False, {"method": "POST", "url": post, "json": {**chat, "model": "gpt-9"}}),
        ("transcribe", True, {"method": "POST", "url": "/v1/audio/transcriptions",
                              "files": {"file": ("q.wav", wav(1.5), "audio/wav")}, "data": {"model": "omni"}}),
        ("not_audio", False, {"method": "POST", "url": post,
                              "json": audio_chat(base64.b64encode(os.urandom(2000)).decode())}),
        ("audio_too_long", False, {"method": "POST", "url": post, "json": audio_chat(long_audio)}),
        ("body_too_large", False, {"method": "POST", "url": post, "content": b"x" * (max_bytes + 10),
                                   "headers": {"content-type": "application/json"}}),
        ("client_path", False, {"method": "POST", "url": post, "json": audio_chat("/etc/passwd")}),
        ("wrong_key", False, {"method": "GET", "url": "/v1/models", "headers": {"Authorization": "Bearer nope"}}),
    ]


def start_server(checkpoint: Path, port: int, device: str, overrides: list[str]) -> tuple[subprocess.Popen, Path]:
    log = Path(tempfile.mkdtemp(prefix="omni-load-")) / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False", "OMNI_API_KEY": KEY}
    cmd = [sys.executable, "-c", "from omni.cli.main import app; app()", "serve", "--checkpoint", str(checkpoint),
           "--port", str(port), f"device={device}", *overrides]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc, log
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server did not start:\n{log.read_text()[-3000:]}")


def run_load(url: str, clients: int, seconds: float, mix: list) -> tuple[dict, dict]:
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    lock = threading.Lock()
    stop = time.time() + seconds

    def client(i: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as http:
            j = i  # clients start at different points of the mix
            while time.time() < stop:
                kind, _, req = mix[j % len(mix)]
                j += 1
                t0 = time.perf_counter()
                try:
                    status = http.request(**req).status_code
                except httpx.HTTPError as e:
                    status = type(e).__name__
                with lock:
                    latencies[kind].append(time.perf_counter() - t0)
                    statuses[kind][status] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, statuses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--checkpoint", type=Path, default=None, help="bundle directory (default: a tiny random one)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="server torch threads")
    ap.add_argument("--rounds", type=int, default=3, help="load rounds of --seconds each (RSS read after each)")
    args = ap.parse_args()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("note: --device cuda requested but no CUDA device is available; skipped")
            return 0
    checkpoint = args.checkpoint
    if checkpoint is None:
        from omni.bundle import tiny_bundle

        checkpoint = tiny_bundle(Path(tempfile.mkdtemp(prefix="omni-load-bundle-")) / "bundle")
    max_bytes = 1_500_000
    overrides = [f"torch_threads={args.threads}", "max_audio_seconds=5", f"max_request_bytes={max_bytes}",
                 "concurrency=2", "queue_timeout_s=300", f"max_requests_per_client={2 * args.clients}",
                 "generation_timeout_s=120", "default_max_tokens=16"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, log = start_server(checkpoint, port, args.device, overrides)
    url = f"http://127.0.0.1:{port}"
    try:
        mix = requests_mix(max_bytes)
        run_load(url, 2, 5.0, mix)  # warm-up: every kind a few times
        rss_before = rss_mb(proc.pid)
        t0 = time.time()
        latencies: dict[str, list[float]] = defaultdict(list)
        statuses: dict[str, Counter] = defaultdict(Counter)
        rss_rounds = []
        for _ in range(args.rounds):
            lat, st = run_load(url, args.clients, args.seconds, mix)
            for k in lat:
                latencies[k] += lat[k]
                statuses[k].update(st[k])
            rss_rounds.append(rss_mb(proc.pid))
        elapsed = time.time() - t0
        time.sleep(5)
        rss_settled = rss_mb(proc.pid)
        alive = httpx.get(f"{url}/health", timeout=5).status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

    valid = {k for k, v, _ in mix if v}
    total = sum(len(v) for v in latencies.values())
    print(f"load test: {args.clients} clients x {args.rounds} rounds x {args.seconds:g} s on loopback ({elapsed:.0f} s wall), "
          f"{total} requests, checkpoint {'tiny random bundle' if args.checkpoint is None else checkpoint}")
    print(f"{'kind':16} {'valid':5} {'n':>5} {'p50 s':>7} {'p95 s':>7}  statuses")
    failures = 0
    for kind, is_valid, _ in mix:
        lat = sorted(latencies.get(kind, []))
        if not lat:
            continue
        p50 = statistics.median(lat)
        p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
        st = statuses[kind]
        bad = sum(n for s, n in st.items() if not isinstance(s, int) or s >= 500) if is_valid else \
            sum(n for s, n in st.items() if not (isinstance(s, int) and 400 <= s < 500))
        failures += bad
        print(f"{kind:16} {'yes' if is_valid else 'no':5} {len(lat):5d} {p50:7.3f} {p95:7.3f}  "
              f"{dict(sorted(st.items(), key=str))}")
    all_valid = sorted(x for k in valid for x in latencies.get(k, []))
    if all_valid:
        print(f"valid requests: n={len(all_valid)} p50={statistics.median(all_valid):.3f} s "
              f"p95={all_valid[int(round(0.95 * (len(all_valid) - 1)))]:.3f} s")
    rounds = ", ".join(f"{r:.0f}" for r in rss_rounds)
    print(f"server RSS: after warm-up {rss_before:.0f} MB, after each round {rounds} MB, 5 s later "
          f"{rss_settled:.0f} MB (settled - warm-up = {rss_settled - rss_before:+.0f} MB, last round - first round "
          f"= {rss_rounds[-1] - rss_rounds[0]:+.0f} MB); healthy after: {alive}")
    print(f"unexpected outcomes (5xx on valid, non-4xx on invalid): {failures}")
    return 1 if failures or not alive else 0


if __name__ == "__main__":
    sys.exit(main())
