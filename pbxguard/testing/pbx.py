"""A real Asterisk 22.10.1 (the prebuilt tarball in ../shared/pbx, or $PBXGUARD_SHARED_PBX), run from a
folder for the tests and the SIPp load benchmark.

Unpacked once into build/pbx (checked against SHA256SUMS), configured for loopback only with the modules the
shipped dialplan needs, started in the foreground as a child process, and stopped by PID.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

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


def unpack() -> Path:
    """The Asterisk prefix, unpacked once (a marker holds the tarball's sha256)."""
    tarball = SHARED_PBX / TARBALL
    if not tarball.exists():
        raise MissingPBX(f"{tarball} is missing: the real-Asterisk tests need ../shared/pbx beside the checkout")
    sums: dict[str, str] = {}
    for line in (SHARED_PBX / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            sums[name] = digest
    target = BUILD / TARBALL.removesuffix(".tar.xz")
    marker = target / ".sha256"
    if marker.exists() and marker.read_text() == sums[TARBALL]:
        return target / "asterisk-22.10.1"
    with open(tarball, "rb") as f:
        actual = hashlib.file_digest(f, "sha256").hexdigest()
    if actual != sums[TARBALL]:
        raise MissingPBX(f"{tarball}: sha256 {actual} is not the one in SHA256SUMS")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(target, filter="tar")
    marker.write_text(actual)
    return target / "asterisk-22.10.1"


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
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.console.close()
