"""The built-in theme files (TOML), shipped as package data of ``taskclock.themes``."""
