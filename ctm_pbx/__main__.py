"""``python -m ctm_pbx`` is the ``ctm-pbx`` command."""

from ctm_pbx.edges.cli import main

main()
