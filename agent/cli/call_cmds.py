"""`kiosk call start|show|hangup`: a technician's video call test, through the running agent.

The camera is opened once, by the daemon (it is shared with the QR scanner), so the CLI never runs a
call itself: it asks the agent's local API (``web.host``/``web.port``) and follows the call's state.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer

from agent.cli.output import JsonOpt, emit_json, say
from agent.cli.state import STATE
from agent.errors import KioskError

_FINAL = ("ended", "missed")


def _api(method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> dict[str, Any]:
    web = STATE.settings().web
    host = "127.0.0.1" if web.host in ("0.0.0.0", "::", "") else web.host
    url = f"http://{host}:{web.port}{path}"
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Call-Token"] = token  # the per-call secret the start response gave
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            doc = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
        except ValueError:
            error = {}
        raise KioskError(str(error.get("error") or f"HTTP {exc.code}"), str(error.get("code") or "http_error")) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise KioskError(f"the agent does not answer at {url} (is `kiosk run` running?): {exc}",
                         "agent_unreachable") from exc
    if not isinstance(doc, dict):
        raise KioskError(f"unexpected answer from {url}", "http_error")
    return doc


def _show(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(info)
        return
    line = f"cuộc gọi {info.get('call')}: {info.get('state')}"
    if info.get("officer"):
        line += f" · cán bộ {info['officer']}"
    if info.get("reason"):
        line += f" · {info.get('ended_by')}: {info['reason']} ({info.get('duration_seconds', 0):.0f} s)"
    say(line)


def register(app: typer.Typer) -> None:
    call_app = typer.Typer(help="Cuộc gọi video tới cán bộ (qua agent đang chạy).", no_args_is_help=True)
    app.add_typer(call_app, name="call")

    @call_app.command("start")
    def start(
        service: Annotated[str | None, typer.Option("--service", help="Service code shown to the officer.")] = None,
        ticket: Annotated[str | None, typer.Option("--ticket", help="Ticket number shown to the officer.")] = None,
        wait: Annotated[bool, typer.Option("--wait", help="Follow the call until it ends.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Ring the ward's officers from this kiosk; prints the call id (and its states with --wait)."""
        body = {k: v for k, v in (("service", service), ("ticket", ticket)) if v is not None}
        info = _api("POST", "/api/calls", body)
        _show(info, as_json)
        last = info.get("state")
        while wait and last not in _FINAL:
            time.sleep(0.5)  # a CLI poll of another process; nothing to await here
            info = _api("GET", f"/api/calls/{info['call']}")
            if info.get("state") != last:
                last = info.get("state")
                _show(info, as_json)

    @call_app.command("show")
    def show(call: Annotated[str, typer.Argument(help="Call id.")], as_json: JsonOpt = False) -> None:
        """The state of a call."""
        _show(_api("GET", f"/api/calls/{call}"), as_json)

    @call_app.command("hangup")
    def hangup(
        call: Annotated[str, typer.Argument(help="Call id.")],
        token: Annotated[str, typer.Option("--token", help="The call's token (printed by `call start --json`).")],
        as_json: JsonOpt = False,
    ) -> None:
        """End a call from the kiosk side."""
        _show(_api("DELETE", f"/api/calls/{call}", token=token), as_json)
