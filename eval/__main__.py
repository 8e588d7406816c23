"""`python -m eval` is `track-eval`."""
import sys

from .cli import main

sys.exit(main())
