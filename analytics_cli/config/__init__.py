"""Configuration: schema (a leaf), load and validate, dump, and the starter file."""
