"""facerouter: a Tornado plugin host for the video worker's face events.

The video worker posts each face on ``POST /v0/frame``; the router asks every plugin what it needs
(:meth:`~facerouter.plugin.Plugin.preprocess`), makes one sfapi detect for all of them, and hands the
detection to the plugins (:meth:`~facerouter.plugin.Plugin.process`). Plugins are written against the
documented FindFace plugin API: :mod:`facerouter.plugin`, :mod:`facerouter.objects`, and the context
of :mod:`facerouter.context`. See ``docs/plugins.rst``.
"""
