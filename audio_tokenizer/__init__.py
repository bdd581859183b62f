"""Audio tokenizer: Whisper encoder + residual conv downsampler + residual VQ at 12.5 Hz, with a mel decoder.

    from audio_tokenizer import AudioTokenizer
    tok = AudioTokenizer.from_pretrained("runs/tokenizer-tiny/tokenizer")
    codes = tok.encode(wav, sample_rate)   # (T, 8)
"""

from audio_tokenizer.model import AudioTokenizer, AudioTokenizerConfig, CodesBatch

__all__ = ["AudioTokenizer", "AudioTokenizerConfig", "CodesBatch"]
