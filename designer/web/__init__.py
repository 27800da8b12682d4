"""The web layer: thin views and their URLs, grouped as the packages they serve."""
