"""Audio input/output shared by every package."""
