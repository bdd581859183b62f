"""Text-to-speech engines for the synthetic speech corpus: espeak-ng and flite.

- **espeak-ng** runs in-process through ctypes on the shared library of the
  ``espeakng-loader`` wheel (always available);
- **flite** runs as the Debian ``flite`` binary in a subprocess (optional: its
  voices are offered only when the binary is on PATH).

Usage::

    speech = synthesize("The cat sat on the mat.", "espeak:en-us+m3", rate=1.2)
    speech.samples       # (T,) float32 in [-1, 1]
    speech.sample_rate   # 22050 for espeak, 8000 or 16000 for flite

``rate`` is a speed factor (1.2 = 20% faster than the engine default) and
``pitch`` a factor on the voice's own base pitch, mapped to engine controls as:

| factor | espeak-ng                              | flite                         |
|--------|----------------------------------------|-------------------------------|
| rate   | ``espeakRATE`` = 175 wpm x rate        | ``duration_stretch`` = 1/rate |
| pitch  | ``espeakPITCH`` = 50 + 50 log2(pitch)  | ``f0_shift`` = pitch          |

espeak-ng multiplies the voice's base pitch by 2**((p - 50) / 50) for its pitch
parameter p in 0..100 (steps of 1.4%); flite's ``f0_shift`` multiplies the F0
target mean. flite's ``rms`` voice ignores all F0 features, so it has
``supports_pitch=False`` and rejects ``pitch != 1``.

Determinism: espeak-ng keeps synthesis state between utterances (pitch-flutter
phase, Klatt filter state), so one text rendered twice in a process differs
slightly. Each call therefore loads a fresh instance of a private copy of the
library, seeds its noise generator (otherwise seeded from the clock) and
unloads it afterwards (about 0.3 ms): output depends on the arguments alone,
in any process, at any time.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENGINES = ("espeak", "flite")
RATE_RANGE = (0.5, 2.5)  # allowed rate factors (espeak-ng takes 80..450 words per minute)
PITCH_RANGE = (0.5, 2.0)  # allowed pitch factors (espeak-ng's pitch table spans +-1 octave)


@dataclass(frozen=True)
class Voice:
    """One voice of one engine.

    Attributes:
        id: catalog id ``"{engine}:{name}"``, e.g. ``"espeak:en-us+m3"``, ``"flite:slt"``.
        engine: ``"espeak"`` or ``"flite"``.
        name: the engine's voice name: ``"accent+variant"`` for espeak-ng, e.g.
            ``"en-us+m3"``; the ``-voice`` argument for flite, e.g. ``"slt"``.
        sample_rate: native output rate of the engine for this voice, in Hz.
        language: ISO 639-1 language code.
        region: two-letter region of the accent, for Dolphin-style ``<en><US>`` tags.
        gender: ``"male"``, ``"female"`` or None when unknown.
        description: a short human-readable description.
        supports_pitch: False when the engine ignores pitch control for this voice.
    """

    id: str
    engine: str
    name: str
    sample_rate: int
    language: str = "en"
    region: str = "US"
    gender: str | None = None
    description: str = ""
    supports_pitch: bool = True

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"Voice.engine must be one of {ENGINES}, got {self.engine!r}")
        if self.id != f"{self.engine}:{self.name}":
            raise ValueError(f"Voice.id must be 'engine:name', got {self.id!r}")
        if len(self.region) != 2 or not self.region.isupper():
            raise ValueError(f"Voice.region must be 2 upper-case letters, got {self.region!r}")
        if self.gender not in (None, "male", "female"):
            raise ValueError(f"Voice.gender must be male, female or None, got {self.gender!r}")


@dataclass
class Speech:
    """Synthesised audio: ``samples`` (T,) float32 mono in [-1, 1] at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


class SynthesisError(RuntimeError):
    """A TTS engine failed; the message carries the engine's own message."""


# ---- catalog ---------------------------------------------------------------------------

# espeak-ng accent -> (language file under espeak-ng-data/lang/, region, description)
_ESPEAK_ACCENTS: dict[str, tuple[str, str, str]] = {
    "en-us": ("gmw/en-US", "US", "General American"),
    "en-us-nyc": ("gmw/en-US-nyc", "US", "New York City"),
    "en": ("gmw/en", "GB", "British (southern)"),
    "en-gb-x-rp": ("gmw/en-GB-x-rp", "GB", "British Received Pronunciation"),
    "en-gb-scotland": ("gmw/en-GB-scotland", "GB", "Scottish"),
    "en-gb-x-gbclan": ("gmw/en-GB-x-gbclan", "GB", "Lancastrian"),
    "en-gb-x-gbcwmd": ("gmw/en-GB-x-gbcwmd", "GB", "West Midlands"),
    # UN M.49 region 029 (Caribbean) has no two-letter code; JM is the nearest.
    "en-029": ("gmw/en-029", "JM", "Caribbean"),
}
# espeak-ng variant (file in espeak-ng-data/voices/!v/) -> (gender, timbre)
_ESPEAK_VARIANTS: dict[str, tuple[str, str]] = {
    "m1": ("male", "low male"),
    "m2": ("male", "male, light echo"),
    "m3": ("male", "male"),
    "m4": ("male", "deep male"),
    "m5": ("male", "male, wide formants"),
    "m6": ("male", "male, narrow formants"),
    "m7": ("male", "soft male"),
    "f1": ("female", "female"),
    "f2": ("female", "breathy female"),
    "f3": ("female", "high female"),
    "f4": ("female", "bright female"),
    "f5": ("female", "breathy high female"),
    "edward": ("male", "male, Klatt synthesiser"),
}
_ESPEAK_SAMPLE_RATE = 22050


def _espeak_voice(accent: str, variant: str) -> Voice:
    _, region, accent_desc = _ESPEAK_ACCENTS[accent]
    gender, timbre = _ESPEAK_VARIANTS[variant]
    name, desc = f"{accent}+{variant}", f"espeak-ng, {accent_desc} accent, {timbre}"
    return Voice(f"espeak:{name}", "espeak", name, _ESPEAK_SAMPLE_RATE, "en", region, gender, desc)


ESPEAK_VOICES: tuple[Voice, ...] = tuple(
    _espeak_voice(accent, variant)
    for accent, variants in [
        ("en-us", ["m1", "m3", "f1", "f4", "edward"]),
        ("en-us-nyc", ["m6", "f2"]),
        ("en", ["m4", "m7", "f3"]),
        ("en-gb-x-rp", ["m5", "f5"]),
        ("en-gb-scotland", ["m2", "f1"]),
        ("en-gb-x-gbclan", ["m3", "f4"]),
        ("en-gb-x-gbcwmd", ["m1", "f2"]),
        ("en-029", ["m2", "f3"]),
    ]
    for variant in variants
)
"""Curated espeak-ng English voices: 20 accent x variant pairs that stay intelligible."""

FLITE_VOICES: tuple[Voice, ...] = (
    Voice("flite:kal", "flite", "kal", 8000, "en", "US", "male", "flite diphone, US male, 8 kHz"),
    Voice("flite:kal16", "flite", "kal16", 16000, "en", "US", "male", "flite diphone, US male"),
    Voice("flite:awb", "flite", "awb", 16000, "en", "GB", "male", "flite clustergen, Scots male"),
    Voice("flite:rms", "flite", "rms", 16000, "en", "US", "male",
          "flite clustergen, US male, fixed pitch", supports_pitch=False),
    Voice("flite:slt", "flite", "slt", 16000, "en", "US", "female", "flite clustergen, US female"),
)
"""flite voices of the Debian ``flite`` package, with their native sample rates."""


@functools.lru_cache(maxsize=1)
def _flite_voice_names() -> frozenset[str]:
    """Voice names that ``flite -lv`` lists; empty when flite is missing or broken."""
    exe = shutil.which("flite")
    if exe is None:
        return frozenset()
    try:
        out = subprocess.run([exe, "-lv"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    if out.returncode != 0 or "Voices available:" not in out.stdout:
        return frozenset()
    return frozenset(out.stdout.split("Voices available:", 1)[1].split())


def flite_available() -> bool:
    """True when the ``flite`` binary is on PATH and runs (checked once per process)."""
    return bool(_flite_voice_names())


def available_voices(engine: str | None = None) -> list[Voice]:
    """Catalog voices usable here, of one engine or all; flite's only when flite runs."""
    if engine is not None and engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES} or None, got {engine!r}")
    voices = list(ESPEAK_VOICES) if engine in (None, "espeak") else []
    if engine in (None, "flite"):
        voices += [v for v in FLITE_VOICES if v.name in _flite_voice_names()]
    return voices


def get_voice(voice_id: str) -> Voice:
    """The catalog voice with this id, e.g. ``"espeak:en-us+m3"`` or ``"flite:slt"``."""
    voice = {v.id: v for v in ESPEAK_VOICES + FLITE_VOICES}.get(voice_id)
    if voice is None:
        known = ", ".join(v.id for v in available_voices())
        raise ValueError(f"unknown voice {voice_id!r}; available voices: {known}")
    if voice.engine == "flite" and not flite_available():
        raise ValueError(
            f"voice {voice_id!r} needs flite, which is not installed or does not run; "
            "install it with `apt-get install flite`, or use an espeak voice"
        )
    if voice.engine == "flite" and voice.name not in _flite_voice_names():
        raise ValueError(f"this flite build has no voice {voice.name!r} ({voice_id!r})")
    return voice


# ---- synthesis -------------------------------------------------------------------------


def synthesize(
    text: str, voice: Voice | str, rate: float = 1.0, pitch: float = 1.0, trim: bool = True
) -> Speech:
    """Render ``text`` with ``voice``; the same arguments give bit-identical samples.

    Args:
        text: English text with at least one non-space character.
        voice: a :class:`Voice` or a catalog id such as ``"espeak:en-us+m3"``.
        rate: speed factor in ``RATE_RANGE``; 1.0 = engine default, 1.2 = 20% faster.
        pitch: factor on the voice's base pitch in ``PITCH_RANGE``; 1.0 = unchanged.
        trim: cut leading/trailing silence down to at most 0.1 s on each side.

    Returns:
        Speech with (T,) float32 samples in [-1, 1] at the voice's native rate.

    Raises:
        ValueError: empty text, unknown voice, or a factor out of range.
        SynthesisError: the engine failed; the message carries the engine's.
    """
    if not text or not text.strip():
        raise ValueError("text to synthesise is empty")
    voice = get_voice(voice) if isinstance(voice, str) else voice
    if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise ValueError(f"rate must be in {RATE_RANGE}, got {rate}")
    if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        raise ValueError(f"pitch must be in {PITCH_RANGE}, got {pitch}")
    if pitch != 1.0 and not voice.supports_pitch:
        raise ValueError(f"voice {voice.id!r} ignores pitch control; use pitch=1.0")
    if voice.engine == "espeak":
        speech = _espeak_runtime().synthesize(text, voice.name, rate, pitch)
    else:
        speech = _flite_synthesize(text, voice.name, rate, pitch)
    if len(speech.samples) == 0:
        raise SynthesisError(f"{voice.id} produced no audio for {text!r}")
    return _trim(speech) if trim else speech


def phonemize(texts: list[str], accent: str = "en-us") -> list[str]:
    """The phonemes of ``texts`` as espeak-ng reads them: its ASCII phoneme names, ``|`` between phonemes,
    spaces between words, stress marks (``'`` ``,``) and pauses (``_:``) included, e.g. ``"What is it?"`` ->
    ``"w|,V|t I|z I|t"``. In-process and deterministic; about 0.2 ms per sentence.

    Raises:
        ValueError: an unknown accent.
    """
    return _espeak_runtime().phonemize(list(texts), accent)


def _trim(speech: Speech, pad_s: float = 0.1, top_db: float = 40.0) -> Speech:
    """Cut audio before the first and after the last 10 ms frame whose RMS is within
    ``top_db`` of the loudest frame's, keeping up to ``pad_s`` seconds on each side."""
    x, sr = speech.samples, speech.sample_rate
    frame = max(1, sr // 100)
    n_frames = math.ceil(len(x) / frame)
    frames = np.pad(x, (0, n_frames * frame - len(x))).reshape(n_frames, frame)  # (F, frame)
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))  # (F,)
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-top_db / 20))
    if loud.size == 0:  # digital silence: nothing to trim against
        return speech
    pad = round(pad_s * sr)
    start, end = max(0, loud[0] * frame - pad), min(len(x), (loud[-1] + 1) * frame + pad)
    return Speech(x[start:end].copy(), sr)


# ---- espeak-ng (in-process, ctypes) ----------------------------------------------------

_ENOUTPUT_MODE_SYNCHRONOUS, _POS_CHARACTER, _ESPEAK_CHARS_UTF8 = 1, 1, 1
_ESPEAK_PARAM_RATE, _ESPEAK_PARAM_PITCH, _ESPEAK_DEFAULT_WPM = 1, 3, 175
_PHONEMES_SEPARATED = ord("|") << 8  # espeak_TextToPhonemes phonememode: ASCII phoneme names, "|" between them
# int callback(short *wav, int n_samples, espeak_EVENT *events); wav == NULL at the end
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)


def _espeak_parameters(rate: float, pitch: float) -> tuple[int, int]:
    """(espeakRATE in words per minute, espeakPITCH in 0..100) for the two factors."""
    pitch_param = min(100, max(0, round(50 + 50 * math.log2(pitch))))
    return round(_ESPEAK_DEFAULT_WPM * rate), pitch_param


def _private_view(lib: Path, data: Path) -> Path:
    """A directory holding a copy of the library and a view of its data; built once.

    The copy has its own inode, so loading it never shares state with another user
    of espeakng-loader in this process, and unloading it really unloads it. The
    data view symlinks the real data but adds each accent's language file under
    its lower-case name: espeak-ng lower-cases voice names before looking for the
    file, and otherwise scans all ~250 voice files (2 ms) on every voice selection.
    """
    st = lib.stat()
    key = hashlib.sha1(f"{lib.resolve()}|{st.st_size}|{st.st_mtime_ns}|{data.resolve()}".encode())
    uid = os.getuid() if hasattr(os, "getuid") else 0
    final = Path(tempfile.gettempdir()) / f"omni-espeak-{uid}-{key.hexdigest()[:12]}"
    if _private_dir(final) and (final / "ready").exists():
        return final
    build = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))  # mode 0700
    shutil.copy2(lib, build / lib.name)
    (build / "data" / "lang").mkdir(parents=True)
    for entry in data.iterdir():
        if entry.name != "lang":
            (build / "data" / entry.name).symlink_to(entry.resolve())
    for accent, (lang_file, _, _) in _ESPEAK_ACCENTS.items():
        (build / "data" / "lang" / accent).symlink_to((data / "lang" / lang_file).resolve())
    (build / "ready").touch()
    try:
        build.rename(final)  # atomic; fails if another process got there first
    except OSError:
        if not _private_dir(final):  # someone else's directory: keep ours, unshared
            return build
        shutil.rmtree(build, ignore_errors=True)
    return final


def _private_dir(path: Path) -> bool:
    """True for a real directory of this user that nobody else can write to."""
    try:
        st = path.lstat()
    except OSError:
        return False
    uid = os.getuid() if hasattr(os, "getuid") else st.st_uid
    return path.is_dir() and not path.is_symlink() and st.st_uid == uid and not st.st_mode & 0o022


class _EspeakRuntime:
    """Renders each utterance on a freshly loaded library; one per process, locked."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = Path(espeakng_loader.get_library_path())
        self.data = Path(espeakng_loader.get_data_path())
        root = _private_view(lib, self.data)
        self.lib_path, self.data_view = root / lib.name, root / "data"
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # must outlive every synthesis

    def _collect(self, wav: int | None, n_samples: int, events: int | None) -> int:
        if wav and n_samples > 0:
            self._chunks.append(ctypes.string_at(wav, 2 * n_samples))  # int16 little-endian
        return 0  # continue

    def check_name(self, name: str) -> None:
        """Raise ValueError unless ``name`` is a known ``accent`` or ``accent+variant``."""
        accent, _, variant = name.partition("+")
        if accent not in _ESPEAK_ACCENTS:
            raise ValueError(f"unknown espeak accent {accent!r}; known: {sorted(_ESPEAK_ACCENTS)}")
        if variant and not (self.data / "voices" / "!v" / variant).is_file():
            # espeak-ng would silently ignore a missing variant
            raise ValueError(f"espeak-ng data has no voice variant {variant!r}")

    def synthesize(self, text: str, name: str, rate: float, pitch: float) -> Speech:
        """Load, initialise, render, terminate and unload; (T,) float32 samples."""
        self.check_name(name)
        wpm, pitch_param = _espeak_parameters(rate, pitch)
        with self.lock:
            self._chunks.clear()
            lib = ctypes.CDLL(str(self.lib_path), mode=ctypes.RTLD_LOCAL)
            try:
                sample_rate = self._render(lib, text, name, wpm, pitch_param)
            finally:
                _dlclose(lib)
            pcm, self._chunks = b"".join(self._chunks), []
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
        return Speech(samples, sample_rate)

    def phonemize(self, texts: list[str], accent: str) -> list[str]:
        """espeak-ng's phonemes of each text (clauses joined by spaces), from one freshly loaded library."""
        self.check_name(accent)
        with self.lock:
            lib = ctypes.CDLL(str(self.lib_path), mode=ctypes.RTLD_LOCAL)
            lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
            lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
            lib.espeak_ng_InitializePath(str(self.data_view).encode())
            context = ctypes.c_void_p()
            try:
                _check(lib, lib.espeak_ng_Initialize(ctypes.byref(context)), "initialise")
                _check(lib, lib.espeak_ng_InitializeOutput(_ENOUTPUT_MODE_SYNCHRONOUS, 0, None), "open output")
                _check(lib, lib.espeak_ng_SetVoiceByName(accent.encode()), f"select voice {accent!r}")
                out = []
                for text in texts:
                    buf = ctypes.create_string_buffer(text.encode("utf-8"))
                    pos = ctypes.c_void_p(ctypes.addressof(buf))  # advanced clause by clause, NULL at the end
                    clauses = []
                    while pos.value:
                        clause = lib.espeak_TextToPhonemes(ctypes.byref(pos), _ESPEAK_CHARS_UTF8, _PHONEMES_SEPARATED)
                        clauses.append((clause or b"").decode("utf-8", errors="replace").strip())
                    out.append(" ".join(c for c in clauses if c))
                return out
            finally:
                lib.espeak_ng_Terminate()
                lib.espeak_ng_ClearErrorContext(ctypes.byref(context))
                _dlclose(lib)

    def _render(self, lib: ctypes.CDLL, text: str, name: str, wpm: int, pitch_param: int) -> int:
        """Synthesise into ``self._chunks`` through the espeak_ng_* API; the sample rate."""
        lib.espeak_ng_InitializePath(str(self.data_view).encode())
        context = ctypes.c_void_p()
        try:
            _check(lib, lib.espeak_ng_Initialize(ctypes.byref(context)), "initialise")
            status = lib.espeak_ng_InitializeOutput(_ENOUTPUT_MODE_SYNCHRONOUS, 0, None)
            _check(lib, status, "open output")
            lib.espeak_SetSynthCallback(self._callback)
            # Initialisation seeds the breath-noise generator from the clock; fix it.
            _check(lib, lib.espeak_ng_SetRandSeed(ctypes.c_long(0)), "seed its noise")
            _check(lib, lib.espeak_ng_SetVoiceByName(name.encode()), f"select voice {name!r}")
            _check(lib, lib.espeak_ng_SetParameter(_ESPEAK_PARAM_RATE, wpm, 0), "set rate")
            status = lib.espeak_ng_SetParameter(_ESPEAK_PARAM_PITCH, pitch_param, 0)
            _check(lib, status, "set pitch")
            data = text.encode("utf-8")
            size, flags = ctypes.c_size_t(len(data) + 1), _ESPEAK_CHARS_UTF8
            status = lib.espeak_ng_Synthesize(data, size, 0, _POS_CHARACTER, 0, flags, None, None)
            _check(lib, status, "synthesise")
            _check(lib, lib.espeak_ng_Synchronize(), "synchronise")
            return lib.espeak_ng_GetSampleRate()
        finally:
            lib.espeak_ng_Terminate()
            lib.espeak_ng_ClearErrorContext(ctypes.byref(context))


def _check(lib: ctypes.CDLL, status: int, action: str) -> None:
    """Raise SynthesisError with espeak-ng's message unless ``status`` is ENS_OK (0)."""
    if status != 0:
        message = ctypes.create_string_buffer(512)
        lib.espeak_ng_GetStatusCodeMessage(ctypes.c_uint(status), message, ctypes.c_size_t(512))
        reason = message.value.decode(errors="replace")
        raise SynthesisError(f"espeak-ng could not {action}: {reason}")


def _dlclose(lib: ctypes.CDLL) -> None:
    import _ctypes

    (_ctypes.dlclose if hasattr(_ctypes, "dlclose") else _ctypes.FreeLibrary)(lib._handle)


_RUNTIME: _EspeakRuntime | None = None
_RUNTIME_LOCK = threading.Lock()


def _espeak_runtime() -> _EspeakRuntime:
    """This process's espeak-ng runtime, created on first use (and anew after a fork)."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None or _RUNTIME.pid != os.getpid() or not _RUNTIME.lib_path.exists():
            _RUNTIME = _EspeakRuntime()
        return _RUNTIME


def _reset_after_fork() -> None:
    global _RUNTIME, _RUNTIME_LOCK
    _RUNTIME, _RUNTIME_LOCK = None, threading.Lock()  # a parent thread may hold the old lock


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


# ---- flite (subprocess) ----------------------------------------------------------------


def _flite_synthesize(
    text: str, name: str, rate: float, pitch: float, timeout_s: float = 60.0
) -> Speech:
    """Run ``flite -voice name -t text -o out.wav`` in a private temp dir; (T,) float32."""
    import soundfile as sf

    exe = shutil.which("flite")
    if exe is None:
        raise SynthesisError("flite is not installed; install it with `apt-get install flite`")
    if name not in _flite_voice_names():  # flite would silently fall back to kal
        raise ValueError(f"flite has no voice {name!r}; it lists {sorted(_flite_voice_names())}")
    args = [exe, "-voice", name, "--setf", f"duration_stretch={1.0 / rate:.6f}"]
    args += ["--setf", f"f0_shift={pitch:.6f}"] if pitch != 1.0 else []
    with tempfile.TemporaryDirectory(prefix="omni-flite-") as tmp:
        wav_path = os.path.join(tmp, "out.wav")
        try:
            proc = subprocess.run(
                [*args, "-t", text, "-o", wav_path],
                capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as err:
            raise SynthesisError(f"flite timed out after {timeout_s} s on {text[:60]!r}") from err
        if proc.returncode != 0 or not os.path.exists(wav_path):
            message = proc.stderr.decode(errors="replace").strip() or f"exit {proc.returncode}"
            raise SynthesisError(f"flite -voice {name} failed: {message}")
        samples, sample_rate = sf.read(wav_path, dtype="float32", always_2d=True)  # (T, C)
    return Speech(np.ascontiguousarray(samples[:, 0]), int(sample_rate))
