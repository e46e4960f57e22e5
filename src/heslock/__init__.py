"""heslock."""
