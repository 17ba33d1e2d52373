"""Layer family: concat."""
