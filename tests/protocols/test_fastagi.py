"""The hardened FastAGI layer against the replies and clients that break panoramisk 1.4."""

import asyncio
import contextlib

import pytest

from pbxguard.protocols.fastagi import AGIClosed, AGITimeout, FastAGIApplication
from pbxguard.testing.replay import agi_environment, replay_asterisk


async def serve(route, allowed=lambda ip: True, **kwargs):
    app = FastAGIApplication(**{"header_timeout": 2.0, "command_timeout": 0.5, **kwargs})
    app.add_route("screen", route)
    server = await asyncio.start_server(app.handler(allowed), "127.0.0.1", 0, limit=65536)
    return server, server.sockets[0].getsockname()[1]


async def scripted_asterisk(port: int, replies: list[bytes], script: str = "screen?x=1") -> list[str]:
    """Connect like Asterisk, answer each command with the next scripted bytes; return the commands."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(agi_environment(script, ["inbound", "2000"], "PJSIP/a-1", "1.1"))
    commands = []
    for reply in replies:
        line = await reader.readline()
        if not line:
            break
        commands.append(line.decode().strip())
        writer.write(reply)
        await writer.drain()
    await reader.read()
    writer.close()
    return commands


def test_replies_that_desync_panoramisk_are_read_correctly():
    results = []

    async def route(request):
        results.append(request.args)
        for _ in range(5):
            results.append(await request.send_command("EXEC Something"))
        results.append(request.hung_up)

    async def main():
        server, port = await serve(route)
        replies = [
            b"100 result=0 Trying...\n200 result=0\n",
            b"520-Invalid command syntax.  Proper usage follows:\n Usage: EXEC <application> <options>\n"
            b" more usage\n520 End of proper usage.\n",
            b"200 result=1 (value with spaces)\n",
            b"200 result=-1\nHANGUP\n",  # the hangup line arrives after the reply ...
            b"511 Command Not Permitted on a dead channel or intercept routine\n",  # ... and is skipped here
        ]
        commands = await scripted_asterisk(port, replies)
        server.close()
        return commands

    commands = asyncio.run(main())
    assert len(commands) == 5
    args, trying, usage, value, hangup, dead, hung_up = results
    assert args == ["inbound", "2000"]
    assert trying["status_code"] == 200 and "error" not in trying
    assert usage["status_code"] == 520 and usage["msg"].endswith("520 End of proper usage.")
    assert value["result"] == ("1", "value with spaces")
    assert hangup["error"] == "AGIAppError"
    assert dead["status_code"] == 511 and hung_up


def test_timeout_and_eof_mid_command():
    outcomes = []

    async def route(request):
        try:
            await request.send_command("WAIT FOR DIGIT 100")
        except AGITimeout as exc:
            outcomes.append(("timeout", request.broken, str(exc)))
        try:
            await request.send_command("NOOP")
        except AGIClosed:
            outcomes.append("closed")

    async def main():
        server, port = await serve(route)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(agi_environment("screen", [], "PJSIP/a-2", "1.2"))
        await reader.readline()  # never answered
        assert await reader.read() == b""  # the daemon dropped the out-of-sync connection
        writer.close()
        server.close()

    asyncio.run(main())
    assert outcomes[0][0] == "timeout" and outcomes[0][1] and outcomes[1] == "closed"


PANORAMISK_MID_HEADER = """
import asyncio
from panoramisk.fast_agi import Application

async def main():
    app = Application(loop=asyncio.get_running_loop())
    server = await asyncio.start_server(app.handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"agi_network: yes\\nagi_network_scr")
    writer.close()
    await asyncio.sleep(0.5)  # never returns if the handler spins without yielding
    print("loop still running")

asyncio.run(main())
"""


def test_panoramisk_freezes_the_loop_on_a_mid_header_close():
    # Why the wrapper exists: at EOF StreamReader.read() returns b"" without yielding, so panoramisk's
    # header loop spins and no other coroutine, no other call, ever runs again.
    import subprocess
    import sys

    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", PANORAMISK_MID_HEADER], capture_output=True, timeout=5)


def test_our_handler_returns_on_a_mid_header_close():
    async def route(request):
        raise AssertionError("no route should run")

    async def main():
        app = FastAGIApplication(header_timeout=5.0)
        app.add_route("screen", route)
        server = await asyncio.start_server(app.handler(lambda ip: True), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"agi_network: yes\nagi_network_scr")
        await writer.drain()
        writer.close()
        await asyncio.sleep(0.3)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        server.close()
        return pending

    assert asyncio.run(main()) == []


def test_routes_must_be_coroutines_and_query_strings_do_not_route():
    seen = []

    async def route(request):
        seen.append(request.headers["agi_network_script"])

    async def main():
        app = FastAGIApplication()
        with pytest.raises(TypeError):
            app.add_route("sync", lambda request: None)
        app.add_route("screen", route)
        server = await asyncio.start_server(app.handler(lambda ip: True), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await scripted_asterisk(port, [], script="screen?x=1")
        await scripted_asterisk(port, [], script="nosuchroute")
        server.close()

    asyncio.run(main())
    assert seen == ["screen?x=1"]


def test_allow_list_refuses_before_reading():
    reached, asked = [], []

    async def route(request):
        reached.append(request.headers)  # a refused peer must never get here

    async def main():
        server, port = await serve(route, allowed=lambda ip: asked.append(ip) or False)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(agi_environment("screen", [], "PJSIP/a-3", "1.3"))
        received = b""
        with contextlib.suppress(ConnectionResetError):  # closed with our bytes unread: a reset is a close too
            received = await reader.read()
        writer.close()
        server.close()
        return received

    assert asyncio.run(main()) == b""
    assert asked == ["127.0.0.1"] and reached == []


def test_a_recorded_session_with_a_hangup_mid_command_replays_in_step():
    # Asterisk 22.10.1, caller hung up during WAIT FOR DIGIT: `200 result=-1`, then `HANGUP` 41 ms later.
    results = []

    async def route(request):
        for command in ("SET VARIABLE PBXGUARD_VERDICT MACHINE", "WAIT FOR DIGIT 15000", "GET VARIABLE PBXGUARD_VERDICT",
                        'EXEC Verbose "after hangup"', "CHANNEL STATUS"):
            results.append(await request.send_command(command))
        results.append(request.hung_up)

    async def main():
        app = FastAGIApplication(command_timeout=2.0)
        app.add_route("holdopen", route)
        server = await asyncio.start_server(app.handler(lambda ip: True), "127.0.0.1", 0)
        commands = await replay_asterisk("127.0.0.1", server.sockets[0].getsockname()[1])
        server.close()
        return commands

    commands = asyncio.run(main())
    assert len(commands) == 5
    set_var, wait, get, verbose, status, hung_up = results
    assert set_var["result"] == ("1", "") and wait["error"] == "AGIAppError"
    assert get["result"] == ("1", "MACHINE")  # the HANGUP line was not taken for this reply
    assert verbose["status_code"] == 200 and status["status_code"] == 511 and hung_up
