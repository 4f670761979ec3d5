"""`python -m mgc_edge` (and `torchrun ... -m mgc_edge train ...`) runs the CLI."""

from mgc_edge.cli import app

if __name__ == "__main__":
    app(prog_name="mgc-edge")
