"""``facestack persons import|export`` against a router serving HTTPS with mutual TLS, certificates
from a private CA made at run time: ``--ca`` verifies the router, ``--cert``/``--key`` answer its
request for a client certificate; without them the tools refuse to talk to it."""
from __future__ import annotations

import asyncio
import csv
import shutil
from pathlib import Path
from typing import Any

from facestack.stack.cli import main as facestack
from tests.plugins.persons.conftest import PREFIX
from tests.tls_ca import make_pki


async def test_bulk_tools_over_mutual_tls_with_a_private_ca(start_persons: Any, data_dir: Path,
                                                            tmp_path: Path, capsys: Any) -> None:
    pki = make_pki(tmp_path / "pki")
    env = await start_persons(router={"tls": {"cert": str(pki.server_cert), "key": str(pki.server_key),
                                              "client_ca": str(pki.ca)}})
    base = env.router.base.replace("http://", "https://")
    trust = ["--ca", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    loop = asyncio.get_running_loop()

    async def run(*argv: str) -> int:
        return await loop.run_in_executor(None, facestack, list(argv))

    # the source, then a one-person watchlist, through the HTTPS API
    from facestack.stack.bulk.persons_client import PersonsApi
    from facestack.core.tls import ClientTls
    api = PersonsApi(base, PREFIX, ssl=ClientTls(ca=str(pki.ca), cert=str(pki.client_cert),
                                                 key=str(pki.client_key)).context())
    try:
        status, body = await api.call("POST", "/sources", json={"name": "door"})
        assert status == 201, body
    finally:
        await api.close()
    folder = tmp_path / "watchlist"
    folder.mkdir()
    shutil.copy(data_dir / "faces" / "obama" / "img1.jpg", folder / "Barack Obama.jpg")
    assert await run("persons", "import", str(folder), "--api", base, "--prefix", PREFIX,
                     "--source", "door", "--largest-face", "--report", str(tmp_path / "r.json"),
                     *trust) == 0
    assert await run("persons", "export", str(tmp_path / "out"), "--api", base, "--prefix", PREFIX,
                     "--state", str(tmp_path / "r.json.state.jsonl"), *trust) == 0
    with (tmp_path / "out" / "persons.csv").open() as fh:
        assert [r["name"] for r in csv.DictReader(fh)] == ["Barack Obama"]
    capsys.readouterr()

    # no trust in the private CA, the wrong CA, no client certificate: refused, nothing exported
    client = ["--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    for i, args in enumerate((client, ["--ca", str(pki.other_ca), *client], ["--ca", str(pki.ca)])):
        out = tmp_path / f"refused{i}"
        assert await run("persons", "export", str(out), "--api", base, "--prefix", PREFIX, *args) == 1
        err = capsys.readouterr().err
        assert "facestack:" in err and "Traceback" not in err, err
        if i < 2:
            assert "certificate" in err.lower(), err
        assert not out.exists()
    # bad options are config errors (exit 2) naming the option
    for args in (["--cert", str(pki.client_cert)], ["--ca", str(tmp_path / "missing.pem")]):
        assert await run("persons", "export", str(tmp_path / "bad"), "--api", base, *args) == 2
        assert "--ca/--cert/--key" in capsys.readouterr().err
