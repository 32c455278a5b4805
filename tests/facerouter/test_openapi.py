"""facerouter's /openapi.json: its own routes, plugins' described routes, and derived ones."""
from __future__ import annotations

import json

DESCRIBED = """
    import tornado.web
    from facerouter.plugin import Plugin

    class Item(tornado.web.RequestHandler):
        def get(self, item_id):
            self.finish({"id": item_id})
        def delete(self, item_id):
            self.set_status(204)

    class Bare(tornado.web.RequestHandler):
        def post(self, a, b):
            self.finish({})

    class Described(Plugin):
        openapi = {"paths": {"/items/{item_id}": {"get": {"responses": {"200": {"description": "x"}}}}},
                   "components": {"schemas": {"Item": {"type": "object"}}}}

    def activate(app, ctx, plugin_name, plugin_source):
        app.add_handlers(r".*", [(r"/items/([0-9]+)", Item), (r"/bare/([a-z]+)/(x|y)", Bare)])
        return Described(ctx)
"""


async def test_document_has_core_and_plugin_routes(start_router, fake_sfapi) -> None:
    r = await start_router({"described": DESCRIBED}, sfapi_url=fake_sfapi.base)
    status, text = await r.get("/openapi.json")
    assert status == 200
    doc = json.loads(text)
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert set(paths["/v0/frame"]) == {"post"}
    assert {"400", "413", "502", "503"} <= set(paths["/v0/frame"]["post"]["responses"])
    assert "/healthz" in paths and "/metrics" in paths and "/openapi.json" in paths
    # the plugin's own description wins over the derived one (no second /items/{p1})
    assert list(paths["/items/{item_id}"]) == ["get"] and "/items/{p1}" not in paths
    assert doc["components"]["schemas"]["Item"] == {"type": "object"}
    bare = paths["/bare/{p1}/{p2}"]["post"]
    assert [p["schema"]["pattern"] for p in bare["parameters"]] == ["^(?:[a-z]+)$", "^(?:x|y)$"]
