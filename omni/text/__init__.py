"""Text side: tokenizers."""
