"""Names of the reference platform (FindFace's ``ntech`` namespace) for plugins written against it.

Only :mod:`ntech.sfapi_client` is provided: an alias of :mod:`sfapi.client`.
"""
