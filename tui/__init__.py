"""taskclock's user-facing side: the CLI entry point and the Textual app. Never imports torch."""
