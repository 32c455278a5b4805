"""Backup and restore of sfapi's gallery store: :mod:`.gallery` (the copy, the watermark export,
the restore and its check), :mod:`.manifest` (counts and checksums), :mod:`.cli` (``sfapi gallery
backup | restore``)."""
