"""The ``chant`` command-line front end (argparse, one renderer per command)."""
