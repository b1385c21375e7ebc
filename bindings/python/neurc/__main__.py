"""python -m neurc train|predict|evaluate (see neurc.cli)."""
import sys

from .cli import main

sys.exit(main())
