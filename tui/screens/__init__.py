"""The app's tabs and modal screens, one module (and one .tcss) each."""
