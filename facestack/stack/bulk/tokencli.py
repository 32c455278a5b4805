"""``facestack token create|list|revoke``: API tokens in the persons database.

The router accepts them when its config says ``auth: {database_tokens: true}`` (it re-reads them
every ``auth.database_refresh_s``). ``create`` prints the secret once, with the config entry
(``sha256``, not the secret) that sfapi or the video worker, which have no database, take instead.
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from plugins.persons.errors import ApiError

_SPAN = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tok = sub.add_parser("token", help="API tokens in the persons database: create, list, revoke")
    tsub = tok.add_subparsers(dest="token_command", required=True)
    for name, help_ in (("create", "a new token; its secret is printed once"),
                        ("list", "the tokens (never their secrets)"),
                        ("revoke", "revoke a token (it stays listed)")):
        p = tsub.add_parser(name, help=help_)
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--router-config", type=Path,
                           help="the facerouter YAML config with the persons: section")
        where.add_argument("--database-url", help="the persons database URL itself")
        p.add_argument("--section", default="persons")
        if name == "create":
            p.add_argument("--name", required=True, help="who holds it (logs and the audit log)")
            p.add_argument("--role", default="read", choices=("read", "ingest", "operator", "admin"))
            p.add_argument("--expires", help="lifetime (30d, 12h, 90m) or an ISO 8601 time")
        if name == "revoke":
            p.add_argument("name")


def _expires_in(text: str | None) -> float | None:
    if text is None:
        return None
    m = _SPAN.match(text.strip())
    if m:
        return int(m.group(1)) * _UNIT[m.group(2)]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--expires {text!r}: give 30d, 12h, 90m, 3600s or an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    left = when.timestamp() - datetime.now(timezone.utc).timestamp()
    if left <= 0:
        raise ValueError(f"--expires {text!r} is in the past")
    return left


async def run(args: argparse.Namespace) -> int:
    from facestack.stack.bulk.dbbackup import persons_config
    from plugins.persons.security import TokenRepo
    from plugins.persons.storage import Database

    url = args.database_url or persons_config(args.router_config, args.section).resolved_database_url()
    db = Database(url)
    await db.open()
    try:
        repo = TokenRepo(db)
        try:
            if args.token_command == "create":
                secret, t = await repo.create(args.name, args.role, _expires_in(args.expires))
                expires = (datetime.fromtimestamp(t["expires_ms"] / 1000, timezone.utc).isoformat()
                           if t["expires_ms"] else None)
                sys.stdout.write(f"token {t['name']} ({t['role']}"
                                 f"{', expires ' + expires if expires else ''}):\n{secret}\n"
                                 "(shown once: store it now)\n")
                from facestack.core.auth import digest
                entry = f"  - {{name: {t['name']}, role: {t['role']}, sha256: {digest(secret)}"
                sys.stdout.write("config entry for a service without the database (auth.tokens):\n"
                                 f"{entry}{', expires: ' + repr(expires) if expires else ''}}}\n")
            elif args.token_command == "list":
                for t in await repo.list():
                    sys.stdout.write(f"{t['name']}\t{t['role']}\t{t['state']}\t{t['sha256_prefix']}\n")
            else:
                t = await repo.revoke(args.name)
                sys.stdout.write(f"token {t['name']} revoked\n")
        except ApiError as exc:
            raise ValueError(exc.reason) from None
    finally:
        await db.close()
    return 0
