"""audio_tokenizer package."""
