"""The built-in facerouter plugins (each also loads from this folder as a plugin directory) and
the persons plugin's tools (``facestack persons ...``)."""
