"""facestack: the layers the services share (docs/architecture.rst)."""
