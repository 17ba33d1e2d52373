"""Layer family: inner_product."""
