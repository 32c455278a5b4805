"""The wheel built from the repo holds everything the services, plugins and stack need, and runs
from where pip puts it, away from the checkout: the script, the plugins by their declared names,
the console's static files."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("facestack", "sfapi", "facerouter", "video_worker", "plugins", "ntech", "sfapi_client")


def test_the_wheel_runs_outside_the_checkout(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    [wheel] = (tmp_path / "dist").glob("facestack-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    tree = {str(p.relative_to(REPO)) for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    assert tree - names == set()  # every module of every package ships
    assert "facerouter/console/static/console.js" in names

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                    "--target", str(site), str(wheel)], check=True, capture_output=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = ("import facestack, plugins, facerouter.console as c\n"
             "from pathlib import Path\n"
             "from facerouter.loader import installed_plugins, import_plugin, PluginSource\n"
             "found = installed_plugins()\n"
             "mods = [import_plugin(PluginSource(n, found[n])).__file__ for n in sorted(found)]\n"
             "print(facestack.__file__); print(sorted(found)); print(all(m.startswith(str(Path(facestack.__file__).parents[1])) for m in mods))\n"
             "print((Path(c.__file__).parent / 'static' / 'index.html').is_file())\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.splitlines()
    assert out[0].startswith(str(site)), out  # the installed copy, not the checkout
    assert out[1] == "['archive', 'log', 'persons', 'webhook']" and out[2] == "True" and out[3] == "True"
    helped = subprocess.run([sys.executable, "-m", "facestack.stack.cli", "--help"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "demo" in helped.stdout and "persons" in helped.stdout
