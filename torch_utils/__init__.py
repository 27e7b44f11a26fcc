"""torch_utils."""
