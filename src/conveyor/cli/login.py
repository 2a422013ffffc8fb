"""`conveyor login` / `logout`: keep (or drop) a token for a server, checked before saving."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from conveyor.cli.common import out, usage
from conveyor.cli.credentials import forget, save_token
from conveyor.cli.remote import refusal
from conveyor.errors import ConveyorError


def _server(ctx: typer.Context, url: str | None) -> str:
    server = url or ctx.find_root().params.get("server")
    if not server:
        raise usage("name the server: `conveyor login URL` (or set CONVEYOR_SERVER)", "URL")
    if not server.startswith(("http://", "https://")):
        raise usage(f"'{server}' is not a URL: give http://HOST:PORT or https://...", "URL")
    return str(server).rstrip("/")


def login(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Argument(metavar="URL", help="The server.")] = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from stdin, not a prompt.")
    ] = False,
) -> None:
    """Keep an API token for a server: later `conveyor --server URL ...` commands use it.

    The token (`conveyor token create USER`, or the one `conveyor demo --serve` prints) is
    checked against the server, then kept in ~/.config/conveyor/credentials.json, readable
    by you alone. CONVEYOR_TOKEN, when set, wins over it.

    \b
    Example:
      conveyor login https://conveyor.example.com
      echo "$TOKEN" | conveyor login https://conveyor.example.com --token-stdin
    """
    server = _server(ctx, url)
    token = (sys.stdin.readline() if token_stdin else getpass.getpass("API token: ")).strip()
    if not token:
        raise usage("no token given", "--token-stdin" if token_stdin else "token")
    import httpx

    try:
        response = httpx.get(
            f"{server}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
    except httpx.TransportError as exc:
        raise ConveyorError(f"cannot reach the server at {server}: {exc}") from None
    if response.status_code != 200:
        raise refusal(response)
    user = str(response.json().get("user", "?"))
    path = save_token(server, token, user)
    out.print(f"logged in to {server} as {user} (token kept in {path})", markup=False)


def logout(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Argument(metavar="URL", help="The server.")] = None,
) -> None:
    """Forget the token kept for a server (the token itself stays valid until revoked:
    `conveyor token revoke ID` ends it).

    \b
    Example:
      conveyor logout https://conveyor.example.com
    """
    server = _server(ctx, url)
    said = "forgot the token for" if forget(server) else "no token was kept for"
    out.print(f"{said} {server}", markup=False)


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(logout)
