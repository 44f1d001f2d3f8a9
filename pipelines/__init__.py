"""Command-line pipelines and data-set readers for Diptych."""
