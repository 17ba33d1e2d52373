"""Layer family: eltwise."""
