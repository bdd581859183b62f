"""One server: the OpenAI-compatible API (``/v1``, ``/health``) and the Gradio UI (``/``) on one FastAPI app.

    engine = SpeechChat.from_checkpoint(ckpt, cfg)
    app = build_server(engine)              # FastAPI app, e.g. for uvicorn or a test client
    run(app, cfg)                           # blocks; Ctrl-C stops it
"""

from __future__ import annotations

import hmac
import logging
import os
import shutil
import tempfile
from pathlib import Path

from fastapi import FastAPI

from serve.config import ServeConfig

log = logging.getLogger("omni.serve")


def ensure_ffmpeg() -> str | None:
    """Put an ``ffmpeg`` on PATH (Gradio's streaming audio and non-WAV formats need one).

    Uses the one on PATH, else links the binary ``imageio-ffmpeg`` ships as ``ffmpeg`` in a private
    directory that is prepended to PATH. Returns its path (None when there is none at all).
    """
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        log.warning("no ffmpeg found: streamed audio in the UI and mp3/opus/aac replies will not work")
        return None
    bindir = Path(tempfile.gettempdir()) / f"omni-ffmpeg-{os.getuid()}"
    bindir.mkdir(exist_ok=True)
    link = bindir / "ffmpeg"
    if not link.exists():
        tmp = bindir / f".ffmpeg.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(exe)
        os.replace(tmp, link)
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    return str(link)


def build_server(engine, with_ui: bool = True) -> FastAPI:
    """The FastAPI app: API routes, then the Gradio UI mounted at ``/`` (login = the API key, when one is set)."""
    import gradio as gr

    from serve.api import build_api
    from serve.app import build_ui

    cfg: ServeConfig = engine.cfg
    ensure_ffmpeg()
    app = build_api(engine)
    if with_ui:
        demo = build_ui(engine)
        auth = None
        if cfg.api_key:
            key = cfg.api_key
            auth = lambda _user, password: hmac.compare_digest(str(password).encode(), key.encode())  # noqa: E731
        app = gr.mount_gradio_app(app, demo, path="/", server_name=cfg.host, server_port=cfg.port,
                                  allowed_paths=[str(demo.reply_dir)], max_file_size=cfg.max_request_bytes,
                                  auth=auth, auth_message="Log in with any user name and the server's API key.",
                                  footer_links=["api", "gradio"], run_history=False, ssr_mode=False)
    return app


def run(app: FastAPI, cfg: ServeConfig) -> None:
    """Serve until interrupted (uvicorn, one process: the models live in it)."""
    import uvicorn

    log.info("serving on http://%s:%d (UI at /, API at /v1)", cfg.host, cfg.port)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info", timeout_graceful_shutdown=5)
