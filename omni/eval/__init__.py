"""Batch evaluation (design brief section 10): ASR and TTS over manifests.

* :mod:`.normalize`, :mod:`.metrics`: text normalisation and WER/CER counts (jiwer), summed, never averaged.
* :mod:`.recognizers`: one interface for the omni model, PocketSphinx, Whisper and ESPnet (systems and judges).
* :mod:`.asr`, :mod:`.tts`, :mod:`.tokenizer_eval` (with :mod:`.speech`): the three evaluations.
* :mod:`.data`, :mod:`.parallel`: rows -> items -> batches -> this rank's share; results gathered.
* :mod:`.mcd`: mel-cepstral distortion with DTW. :mod:`.results`, :mod:`.report`, :mod:`.plots`,
  :mod:`.compare`: totals, report files, figures and report differences.
"""
