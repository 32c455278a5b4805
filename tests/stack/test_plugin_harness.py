"""The plugin authors' harness (facestack.stack.plugin_testing and its pytest fixture): a plugin of
one's own and an installed one run in a real router against a real sfapi on real photos."""
from __future__ import annotations

import textwrap
from pathlib import Path

from facestack.stack.plugin_testing import sample_photo

COUNTER = """
    from facerouter.plugin import Plugin

    class Counter(Plugin):
        def __init__(self, ctx):
            super().__init__(ctx)
            self.genders = []
        async def preprocess(self, request, labels):
            return ("gender",)
        async def process(self, request, photo, bbox, event_id, detection):
            self.genders.append(detection.features["gender"]["gender"])
"""


async def test_own_plugin_from_a_folder_on_a_real_photo(facerouter_plugin, tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "my-plugins"
    folder.mkdir()
    (folder / "counter.py").write_text(textwrap.dedent(COUNTER))
    async with facerouter_plugin(plugin_dir=folder, sfapi_config={"models": {"dir": str(models_dir)}}) as run:
        status, body = await run.post_frame(sample_photo("obama"))
        assert status == 200 and body["processed"] == ["counter"] and body["failed_plugins"] == []
        assert run.plugin("counter").genders == ["male"]


async def test_an_installed_plugin_by_name(facerouter_plugin, models_dir: Path) -> None:
    """facestack's archive plugin, loaded by its declared name like any pip-installed plugin."""
    async with facerouter_plugin("archive", config={"archive": {"gallery": "archive"}},
                                 sfapi_config={"models": {"dir": str(models_dir)}}) as run:
        status, body = await run.post_frame(sample_photo("biden"), labels={"door": "front"})
        assert status == 200 and body["processed"] == ["archive"], body
        async with run.http.get(f"{run.sfapi_url}/v2/galleries/archive/faces") as resp:
            faces = (await resp.json())["results"]
        assert [f["id"]["face"] for f in faces] == [int(body["event_id"])]  # stored in the real sfapi
