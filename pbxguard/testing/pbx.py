"""A real Asterisk 22.10.1 (the prebuilt tarball in ../shared/pbx, or $PBXGUARD_SHARED_PBX), run from a
folder for the tests and the SIPp load benchmark.

Unpacked once into build/pbx (checked against SHA256SUMS), configured for loopback only with the modules the
shipped dialplan needs, started in the foreground as a child process, and stopped by PID.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from pathlib import Path

from pbxguard.protocols.esl import EVENT_PLAIN, Message, MessageReader
from pbxguard.protocols.esl import command as esl_command

ROOT = Path(__file__).resolve().parents[2]
SHARED_PBX = Path(os.environ.get("PBXGUARD_SHARED_PBX", ROOT.parent / "shared" / "pbx"))
TARBALL = "asterisk-22.10.1-debian12-amd64.tar.xz"
BUILD = ROOT / "build" / "pbx"
SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
MODULES = (
    "pbx_config", "res_agi", "app_audiosocket", "res_audiosocket", "app_stack", "app_playback", "app_read",
    "app_senddtmf", "app_verbose", "app_queue", "app_amd", "app_echo", "app_cdr", "res_musiconhold",
    "func_logic", "func_strings", "func_callerid", "func_cdr", "func_channel", "func_global", "func_cut",
    "format_wav", "format_pcm", "format_sln", "codec_ulaw", "codec_alaw", "codec_resample", "res_timing_timerfd",
    "res_clioriginate", "app_dial", "app_exec", "app_userevent", "res_speech", "func_hangupcause",
)


# app_amd's documented defaults (the settings integration-facts.md measured it with); quiet stand-ins for the
# configs whose absence only logs noise at boot.
BASE_CONFIGS = {
    "amd.conf": "[general]\ninitial_silence = 2500\ngreeting = 1500\nafter_greeting_silence = 800\n"
                "total_analysis_time = 5000\nmin_word_length = 100\nbetween_words_silence = 50\n"
                "maximum_number_of_words = 2\nsilence_threshold = 256\nmaximum_word_length = 5000\n",
    "indications.conf": "[general]\ncountry = us\n[us]\ndescription = United States\nringcadence = 2000,4000\n"
                        "dial = 350+440\nbusy = 480+620/500,0/500\nring = 440+480/2000,0/4000\n"
                        "congestion = 480+620/250,0/250\n",
    "cdr.conf": "[general]\nenable = yes\n", "cel.conf": "[general]\n", "features.conf": "[general]\n",
    "acl.conf": "", "udptl.conf": "[general]\n", "ccss.conf": "[general]\n",
    "manager.conf": "[general]\nenabled = no\n", "queuerules.conf": "",
}


class MissingPBX(RuntimeError):
    pass


def unpack(name: str = TARBALL) -> Path:
    """The prefix of a PBX tarball, unpacked once (a marker holds the tarball's sha256)."""
    tarball = SHARED_PBX / name
    if not tarball.exists():
        raise MissingPBX(f"{tarball} is missing: the real-PBX tests need ../shared/pbx beside the checkout")
    sums: dict[str, str] = {}
    for line in (SHARED_PBX / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, listed = line.split()
            sums[listed.lstrip("*")] = digest
    target = BUILD / name.removesuffix(".tar.xz")
    marker = target / ".sha256"
    top = name.split("-debian12")[0]  # the folder inside the tarball: asterisk-22.10.1, freeswitch-1.10.12
    if marker.exists() and marker.read_text() == sums[name]:
        return target / top
    with open(tarball, "rb") as f:
        actual = hashlib.file_digest(f, "sha256").hexdigest()
    if actual != sums[name]:
        raise MissingPBX(f"{tarball}: sha256 {actual} is not the one in SHA256SUMS")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        # Its sha256 was checked above. The "tar" filter also refuses paths out of the folder, but Debian 12's
        # Python (3.11.2) predates it (3.11.4).
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(target, filter="tar")
        else:
            tar.extractall(target)
    marker.write_text(actual)
    return target / top


class Asterisk:
    """One running Asterisk. `extensions` is the body of extensions.conf (it may #include the shipped file)."""

    def __init__(self, workdir: Path, extensions: str, extra_configs: dict[str, str] | None = None,
                 env: dict[str, str] | None = None, extra_modules: tuple[str, ...] = ()) -> None:
        self.prefix = unpack()
        self.dir = workdir
        for sub in ("etc", "lib", "run", "log", "spool", "agi-bin", "keys", "cache", "data"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        data = workdir / "data"
        (data / "sounds").mkdir(exist_ok=True)
        for link, source in ((data / "documentation", self.prefix / "var/lib/asterisk/documentation"),
                             (data / "sounds" / "en", SOUNDS)):
            if not link.exists():
                link.symlink_to(source)
        etc = workdir / "etc"
        self.conf = etc / "asterisk.conf"
        self.conf.write_text(f"""[directories]
astetcdir => {etc}
astmoddir => {self.prefix / 'lib/asterisk/modules'}
astvarlibdir => {workdir / 'lib'}
astdbdir => {workdir / 'lib'}
astkeydir => {workdir / 'keys'}
astdatadir => {data}
astagidir => {workdir / 'agi-bin'}
astspooldir => {workdir / 'spool'}
astrundir => {workdir / 'run'}
astlogdir => {workdir / 'log'}
astsbindir => {self.prefix / 'sbin'}
astcachedir => {workdir / 'cache'}
[options]
verbose = 3
""")
        (etc / "modules.conf").write_text("[modules]\nautoload = no\n" + "".join(f"load => {m}.so\n" for m in MODULES + extra_modules))
        (etc / "logger.conf").write_text("[general]\n[logfiles]\nmessages => notice,warning,error\nfull => verbose,notice,warning,error\n")
        (etc / "extensions.conf").write_text(extensions)
        for name, text in {**BASE_CONFIGS, **(extra_configs or {})}.items():
            (etc / name).write_text(text)
        env = {**os.environ, **(env or {}), "LD_LIBRARY_PATH": str(self.prefix / "lib")}
        self.env = env
        self.console = open(workdir / "console.log", "w")
        self.process = subprocess.Popen([str(self.prefix / "sbin/asterisk"), "-f", "-C", str(self.conf)], env=env,
                                        stdin=subprocess.DEVNULL, stdout=self.console, stderr=subprocess.STDOUT)
        self.cli("core waitfullybooted", timeout=60)

    def cli(self, command: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run([str(self.prefix / "sbin/asterisk"), "-C", str(self.conf), "-rx", command], env=self.env,
                                  capture_output=True, text=True, timeout=timeout)
            if done.returncode == 0 and "Unable to connect" not in done.stdout + done.stderr:
                return done.stdout
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"asterisk -rx {command!r}: {done.stdout}{done.stderr} (see {self.dir}/console.log)")
            time.sleep(0.1)

    def log(self, name: str = "messages") -> str:
        """The notice/warning/error log ("messages") or, with "full", every dialplan step too."""
        path = self.dir / "log" / name
        return path.read_text() if path.exists() else ""

    def full_log(self) -> str:
        return self.log("full")

    def globals(self) -> dict[str, str]:
        out = {}
        for line in self.cli("dialplan show globals").splitlines():
            m = re.match(r"\s*(\w+)=(.*)$", line)
            if m:
                out[m.group(1)] = m.group(2)
        return out

    def stop(self) -> None:
        stop_process(self.process, lambda: self.process.send_signal(signal.SIGTERM))
        self.console.close()


FREESWITCH_TARBALL = "freeswitch-1.10.12-debian12-amd64.tar.xz"


def free_port(run: int = 1) -> int:
    """A free loopback port, the first of `run` free ones in a row (a configuration file takes no port 0; each
    worker takes the next AudioSocket port)."""
    while True:
        with contextlib.ExitStack() as held:
            first = held.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                for following in range(port + 1, port + run):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", following))
            except OSError:
                continue
            return port


def stop_process(process: subprocess.Popen, ask) -> None:
    """Ask a PBX to shut down (`ask()`), give it 20 s, then kill it."""
    if process.poll() is None:
        with contextlib.suppress(Exception):
            ask()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class SocketStream:
    """readline/read over a socket with its own buffer, so that waiting with select() sees what is buffered."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def readline(self, size: int = -1) -> bytes:
        while b"\n" not in self.buffer and (size < 0 or len(self.buffer) < size) and self._fill():
            pass
        end = self.buffer.find(b"\n") + 1 or len(self.buffer)
        end = min(end, size) if size >= 0 else end
        line, self.buffer = self.buffer[:end], self.buffer[end:]
        return line

    def read(self, size: int = -1) -> bytes:
        while len(self.buffer) < size and self._fill():
            pass
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


class ESL:
    """A small inbound event-socket client: `api` commands and the events it subscribed to."""

    def __init__(self, port: int, password: str = "ClueCon", events: str = "CHANNEL_HANGUP_COMPLETE") -> None:
        import socket

        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.stream = SocketStream(self.sock)
        self.reader = MessageReader(self.stream)
        self.events: list[dict[str, str]] = []
        self._read()  # auth/request
        self._command(f"auth {password}")
        self._command(f"event plain {events}")

    def _read(self) -> Message:
        """The next reply; events read on the way are kept."""
        while True:
            message = self.reader.read()
            if message is None:
                raise ConnectionError("FreeSWITCH closed the event socket")
            if message.content_type != EVENT_PLAIN:
                return message
            self.events.append(message.event)

    def _command(self, command: str) -> str:
        self.sock.sendall(esl_command(command))
        reply = self._read()
        return reply.headers.get("Reply-Text", "") or reply.body

    def api(self, command: str) -> str:
        return self._command(f"api {command}").strip()

    def bgapi(self, command: str) -> str:
        """Run in the background: the reply is "+OK Job-UUID: ..." at once, whatever the command's result."""
        return self._command(f"bgapi {command}").strip()

    def subscribe(self, events: str) -> str:
        """More events (`event plain` adds to what was subscribed), e.g. "CUSTOM avmd::beep"."""
        return self._command(f"event plain {events}")

    def wait_event(self, predicate, timeout: float) -> dict[str, str]:

        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if predicate(event):
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no such event")
            if not self.stream.buffer and not select.select([self.sock], [], [], remaining)[0]:
                continue
            message = self.reader.read()  # once it has begun, a message arrives whole
            if message is None:
                raise ConnectionError("FreeSWITCH closed the event socket")
            if message.content_type == EVENT_PLAIN:
                self.events.append(message.event)

    def close(self) -> None:
        self.sock.close()


class FreeSWITCH:
    """One running FreeSWITCH 1.10.12 with the tarball's minimal conf, on free loopback ports, and the given
    dialplan files added (name -> XML: `public/x.xml` into the public context, `x.xml` beside it)."""

    def __init__(self, workdir: Path, dialplan: dict[str, str], variables: dict[str, str] | None = None) -> None:
        import socket

        self.prefix = unpack(FREESWITCH_TARBALL)
        self.dir = workdir
        conf = workdir / "conf"
        if not conf.exists():
            shutil.copytree(self.prefix / "conf", conf)
        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        self.esl_port, self.sip_port = ports
        edits = {"autoload_configs/event_socket.conf.xml": [('value="8021"', f'value="{self.esl_port}"')],
                 "autoload_configs/sofia.conf.xml": [('value="5080"', f'value="{self.sip_port}"')],
                 "autoload_configs/callcenter.conf.xml": [("127.0.0.1:5080", f"127.0.0.1:{self.sip_port}")],
                 "autoload_configs/switch.conf.xml": [('name="sessions-per-second" value="100"',
                                                       'name="sessions-per-second" value="1000"')]}
        for name, pairs in edits.items():
            text = (conf / name).read_text()
            for old, new in pairs:
                text = text.replace(old, new)
            (conf / name).write_text(text)
        presets = "".join(f'  <X-PRE-PROCESS cmd="set" data="{k}={v}"/>\n' for k, v in (variables or {}).items())
        main = (conf / "freeswitch.xml").read_text()
        (conf / "freeswitch.xml").write_text(main.replace('<document type="freeswitch/xml">\n',
                                                          '<document type="freeswitch/xml">\n' + presets, 1))
        for name, xml in dialplan.items():
            (conf / "dialplan" / name).parent.mkdir(parents=True, exist_ok=True)
            (conf / "dialplan" / name).write_text(xml)
        for sub in ("log", "run", "db", "storage", "cache", "recordings"):
            (workdir / sub).mkdir(exist_ok=True)
        sounds = workdir / "sounds"
        if not sounds.exists():
            sounds.symlink_to(SOUNDS)  # Asterisk's prompts stand in for FreeSWITCH's sound packs
        env = {**os.environ, "LD_LIBRARY_PATH": str(self.prefix / "lib")}
        self.console = open(workdir / "console.log", "w")
        self.process = subprocess.Popen(
            [str(self.prefix / "bin/freeswitch"), "-nf", "-nc", "-nonat", "-base", str(self.prefix), "-mod",
             str(self.prefix / "mod"), "-conf", str(conf), "-log", str(workdir / "log"), "-run", str(workdir / "run"),
             "-db", str(workdir / "db"), "-sounds", str(sounds), "-storage", str(workdir / "storage"),
             "-cache", str(workdir / "cache"), "-recordings", str(workdir / "recordings")],
            env=env, stdin=subprocess.DEVNULL, stdout=self.console, stderr=subprocess.STDOUT)
        self.esl = ESL(self.esl_port, events="CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE")
        deadline = time.monotonic() + 60
        while "UP" not in self.esl.api("status"):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"FreeSWITCH did not come up (see {workdir}/console.log)")
            time.sleep(0.2)

    def log(self) -> str:
        path = self.dir / "log" / "freeswitch.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process, lambda: self.esl.api("fsctl shutdown"))
        self.esl.close()
        self.console.close()
