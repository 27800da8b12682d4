"""Designing: the canvas, operation rules, forms, connection tests and the project file."""
