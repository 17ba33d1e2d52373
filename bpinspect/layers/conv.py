"""Layer family: conv."""
