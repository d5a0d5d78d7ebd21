"""`python -m pipeline` is the `cgankd` command (what torchrun launches: `torchrun ... -m pipeline gan -e EXP`)."""

from pipeline.cli import app

app(prog_name="cgankd")
