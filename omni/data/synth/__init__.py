"""Synthetic corpus: closed-domain conversational text and its spoken forms."""
