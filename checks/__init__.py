"""The rule catalogue: one rule per module, named by its id."""
