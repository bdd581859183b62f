"""omni: train and serve a speech-in / speech-out multimodal LLM."""

__version__ = "0.1.0"
