"""The judge's transcripts of reference audio, kept between evaluations.

A recipe's speech gates and its TTS evaluation judge the same held-out references (the vocoder, Griffin-Lim,
resynthesis and TTS steps all read ``tts_test``); with a cache directory each reference is judged once. A
transcript is keyed by the judge (its name and settings, less where it runs) and the audio segment (resolved
path, size, modification time, offset, duration), so an edited file or another judge is judged again. One small
JSON file per transcript, written atomically: several processes may share the directory.

Only judges whose transcript of a clip depends on that clip alone may be cached; PocketSphinx is decoded from a
fresh front end for that reason (:func:`omni.eval.sphinx_pool.decode`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from omni.config import to_data
from omni.eval.data import EvalItem
from omni.eval.recognize import Recognized
from omni.eval.recognizers.base import RecognizerConfig
from omni.integrity import write_atomic

_WHERE_IT_RUNS = ("device", "workers")  # settings that do not change a transcript


class ReferenceCache:
    """Transcripts of reference audio under ``directory`` for one judge."""

    def __init__(self, directory: str | os.PathLike, judge_name: str, judge_cfg: RecognizerConfig):
        self.dir = Path(directory)
        settings = {k: v for k, v in to_data(judge_cfg).items() if k not in _WHERE_IT_RUNS}
        self.judge = json.dumps({"name": judge_name, **settings}, sort_keys=True)

    def _path(self, item: EvalItem) -> Path:
        assert item.row is not None and item.audio_path is not None
        st = Path(item.audio_path).stat()
        key = json.dumps([self.judge, str(Path(item.audio_path).resolve()), st.st_size, st.st_mtime_ns,
                          item.row.offset, item.row.duration if item.row.offset is not None else None])
        return self.dir / f"{hashlib.sha1(key.encode()).hexdigest()}.json"

    def get(self, item: EvalItem) -> Recognized | None:
        """The cached transcript of the item's audio, or None."""
        try:
            data = json.loads(self._path(item).read_text(encoding="utf-8"))
            return Recognized(item.index, data["text"], float(data["seconds"]), float(data["audio_seconds"]))
        except (OSError, ValueError, KeyError, TypeError):  # not cached, or an unreadable entry: judge it again
            return None

    def put(self, item: EvalItem, rec: Recognized) -> None:
        """Keep a successful transcript."""
        if rec.error is not None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        entry = {"text": rec.text, "seconds": rec.seconds, "audio_seconds": rec.audio_seconds,
                 "audio": str(item.audio_path), "judge": self.judge}
        write_atomic(self._path(item), (json.dumps(entry) + "\n").encode("utf-8"))
