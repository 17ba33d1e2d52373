"""Layer family: shape."""
