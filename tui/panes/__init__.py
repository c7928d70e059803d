"""The app's tabs (one TabPane content widget each), with one .tcss beside each."""
