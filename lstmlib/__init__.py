"""lstmlib."""
