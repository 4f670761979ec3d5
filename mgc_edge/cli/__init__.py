"""The `mgc-edge` command line, assembled from one small module per command group.

Every command is registered here, in the order `--help` lists them. No command module imports torch at
import time, so `mgc-edge --help` and the runtime commands stay fast and work on an edge box without PyTorch.
"""

from mgc_edge.cli import annotate, data, export, fleet, runtime, train
from mgc_edge.cli.app import app

app.command()(data.synth)
app.command()(train.train)
app.command()(train.evaluate)
app.command()(export.export)
app.command()(export.verify)
app.command()(runtime.webcam)
app.command()(runtime.predict)
app.command()(annotate.annotate)
app.command()(fleet.fleet)

__all__ = ["app"]
