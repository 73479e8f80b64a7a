"""`greenops-lint probe` (in progress)."""

import click


@click.command()
def probe():
    """Measure the real cost of findings (not yet available)."""
    raise click.ClickException("the probe is not built yet")
