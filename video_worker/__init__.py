"""The video worker: camera jobs in, best faces out to facerouter (``video-worker``)."""
