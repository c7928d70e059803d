"""taskclock: chat with local LLMs and measure what you wait for.

The code lives in the checkout's top-level ``runtime/`` (headless library: backends, events, metrics, bench),
``tui/`` (command line and Textual app) and ``themes/``. The package installs them as ``taskclock.runtime``,
``taskclock.tui`` and ``taskclock.themes`` (pyproject's package-dir mapping), so no top-level ``runtime``
or ``tui`` lands in site-packages; in the checkout, the links in this folder give the same names to a
plain ``python -m taskclock`` or ``mypy -p taskclock`` run from the top of the tree.
"""
