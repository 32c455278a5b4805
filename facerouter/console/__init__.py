"""The operator console: a web page served by facerouter at ``/ui/`` over the router's own API.

* :mod:`.config` the ``console:`` section; :mod:`.sessions` login sessions (cookie, CSRF, Origin);
* :mod:`.events` the entry stream (``GET /v1/events/stream``, Server-Sent Events);
* :mod:`.pages` the static files and the login, logout and session routes;
* :mod:`.search` look-alike search by photo over the archive gallery; :mod:`.enrol` enrolment with
  the no-face / several-faces checks; :mod:`.cameras` the video worker's jobs;
* :mod:`.service` builds all of it for the router.

The page itself (``static/``) is plain HTML, CSS and JavaScript files shipped in the package: no
CDN, no inline script, every value shown through ``textContent``.
"""
