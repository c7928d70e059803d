"""`python -m taskclock`: the same entry point as the `taskclock` command."""
import sys

from taskclock.tui.cli import main

sys.exit(main())
