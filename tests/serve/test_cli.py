"""``shopsense keys`` and the ``serve`` command's wiring."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shopsense.cli import app


def test_keys_create_list_revoke(tmp_path):
    runner = CliRunner()
    home = str(tmp_path / "home")
    r = runner.invoke(app, ["keys", "create", "--role", "read", "--name", "ci", "--home", home])
    assert r.exit_code == 0, r.output
    key = r.output.strip()
    assert key.startswith("ss_")
    stored = json.loads((tmp_path / "home" / "api_keys.json").read_text())
    assert stored["keys"][0]["role"] == "read" and key.split("_", 2)[2] not in json.dumps(stored)
    kid = key.split("_")[1]
    r = runner.invoke(app, ["keys", "list", "--home", home])
    assert kid in r.output and "ci" in r.output and key.split("_", 2)[2] not in r.output
    r = runner.invoke(app, ["keys", "create", "--role", "admin", "--home", home])
    assert r.exit_code == 2 and "role" in r.output
    assert runner.invoke(app, ["keys", "revoke", kid, "--home", home]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", kid, "--home", home]).exit_code == 1


def test_serve_help_lists_options():
    r = CliRunner().invoke(app, ["serve", "--help"])
    assert r.exit_code == 0
    for opt in ("--home", "--host", "--port", "--demo", "--private-reads", "--cors"):
        assert opt in r.output


def test_workers_socket_turns_nagle_off_for_every_connection():
    """Issue "Serve a shop's real traffic": uvicorn binds its workers' socket with protocol 0,
    so asyncio left Nagle's algorithm on and each keep-alive answer of a multi-worker server
    waited ~40 ms for the client's delayed ACK. The socket the workers get says it is TCP."""
    import asyncio
    import socket

    from shopsense.cli import tcp_socket

    raw = socket.socket(family=socket.AF_INET)  # what uvicorn's Config.bind_socket makes
    raw.bind(("127.0.0.1", 0))
    assert raw.proto == 0
    sock = tcp_socket(raw)
    assert sock.proto == socket.IPPROTO_TCP and sock.get_inheritable()
    sock.listen()
    nodelay: list[int] = []

    async def main() -> None:
        def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            nodelay.append(w.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            w.close()

        server = await asyncio.start_server(on_conn, sock=sock)  # as each uvicorn worker serves it
        _, w = await asyncio.open_connection(*sock.getsockname())
        for _ in range(100):
            if nodelay:
                break
            await asyncio.sleep(0.05)
        w.close()
        server.close()

    asyncio.run(main())
    assert nodelay and nodelay[0] != 0
