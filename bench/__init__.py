"""Load generator for the chat backend (issue 8): `python -m bench --help`, or `make bench`."""
