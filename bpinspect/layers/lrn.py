"""Layer family: lrn."""
