"""The top layer: the launcher, the demos, the sample data and the site tools (the facestack script)."""
