"""Speech recognisers behind one interface (systems under test and judges); see :mod:`.base`."""

from omni.eval.recognizers.base import RECOGNIZERS, Recognizer, RecognizerConfig, build_recognizer

__all__ = ["RECOGNIZERS", "Recognizer", "RecognizerConfig", "build_recognizer"]
