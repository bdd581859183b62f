"""Data: manifests, validation, the synthetic corpus."""
