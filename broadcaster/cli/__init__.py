"""The `broadcaster` command line (main.py wires the verb groups)."""
