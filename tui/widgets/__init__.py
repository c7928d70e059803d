"""Widgets shared by the app's tabs."""
