"""Bulk operations on the persons of a running site, as the ``facestack`` console script runs them.

* :mod:`.items` what to enrol: a folder of photos or a CSV, read into one item per person;
* :mod:`.persons_client` the persons HTTP API and sfapi's detect, as the importer and the exporter call them;
* :mod:`.outcome` how each answer of the API becomes a report row (enrolled / refused and why);
* :mod:`.state` the resume file, :mod:`.report` the report file, :mod:`.progress` the progress bar;
* :mod:`.importer` ``facestack persons import``; :mod:`.exporter` ``facestack persons export``;
* :mod:`.dbbackup` the persons database backup and restore; :mod:`.joint` both stores together;
* :mod:`.cli` the ``facestack`` console script.

Everything goes through the running API (so every rule and threshold of the site applies) except
the backups, which read the stores themselves.
"""
