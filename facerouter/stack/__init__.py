"""``facerouter-stack``: run sfapi, facerouter and the video worker as supervised child processes."""
