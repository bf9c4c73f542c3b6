"""STIR/SHAKEN through the real PBXs: SIPp INVITEs carrying Identity headers signed by a test authority whose
certificate a loopback HTTP server serves, so that Asterisk's own verification really passes or fails; and
carriers' verstat on P-Asserted-Identity or From, on Asterisk and on FreeSWITCH. The daemon logs what the
PBX found and, as configured here, challenges failed and C-level attestations (off by default)."""

from __future__ import annotations

import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pbxguard.audio import g711
from pbxguard.audio.files import read_audio
from pbxguard.bench import SIPP_MODULES, SIPP_SCENARIO
from pbxguard.shipped import DIALPLAN
from pbxguard.testing import stir
from pbxguard.testing.pbx import Asterisk
from tests.daemon import EXAMPLES, Daemon
from tests.web.page import serving

CALLER = "+12025550143"
STIR_MODULES = SIPP_MODULES + ("res_stir_shaken", "res_pjsip_stir_shaken", "res_curl", "res_pjsip_header_funcs",
                               "func_module")
CHALLENGING = {"attestation_failed_action": "CHALLENGE", "attestation_c_action": "CHALLENGE"}
BYE = """  <pause milliseconds="3500"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:[service][call_number]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "caller" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service][call_number]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:load@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" timeout="5000"/>
</scenario>
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scenario(headers: list[str], from_params: str, audio: Path) -> str:
    """The shipped SIPp caller with these headers on its INVITE, URI parameters on its From, the opening
    streamed, and a hangup after 3.5 s (the call is challenged or bridged by then)."""
    text = SIPP_SCENARIO.read_text().replace('rtp_stream="[audio],', f'rtp_stream="{audio},')
    text = text.replace("Max-Forwards: 70\n      Content-Type", "Max-Forwards: 70\n      "
                        + "".join(f"{h}\n      " for h in headers) + "Content-Type", 1)
    text = text.replace('"load" <sip:[caller]@', f'"caller" <sip:[caller]{from_params}@')
    return text[: text.index('  <recv request="BYE"')] + BYE.replace("sip:[caller]@", f"sip:[caller]{from_params}@")


def place(work: Path, port: int, number: str, headers: list[str], from_params: str, audio: Path, k: int) -> None:
    """One SIPp call to `number` (SIPp dials its -s service followed by the call's number, 1)."""
    assert number.endswith("1")
    path = work / f"uac_{number}.xml"
    path.write_text(scenario(headers, from_params, audio))
    with open(work / f"sipp_{number}.log", "w") as log:
        subprocess.run(["sipp", f"127.0.0.1:{port}", "-sf", str(path), "-s", number[:-1], "-key", "caller", CALLER, "-i", "127.0.0.1",
                        "-p", str(free_udp_port()), "-m", "1", "-nostdin", "-mi", "127.0.0.1", "-mp", str(32000 + 200 * k),
                        "-timeout", "30s"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=work, timeout=60)


@pytest.fixture(scope="module")
def opening(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stir") / "live.ulaw"
    path.write_bytes(g711.ulaw_encode(read_audio(EXAMPLES / "live_answer.wav")).tobytes())
    return path


def test_asterisk_verifies_and_pbxguard_logs_and_acts_on_it(asterisk_prefix, tmp_path, opening):
    authority = stir.Authority(tmp_path / "sti")
    certificates = stir.CertificateServer(authority.cert_pem)
    daemon = Daemon(callerid=CHALLENGING)
    port = free_udp_port()
    cache = tmp_path / "asterisk" / "keys" / "stir_shaken" / "cache"
    cache.mkdir(parents=True)
    configs = {
        "pjsip.conf": f"[udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:{port}\n\n"
                      "[trunk]\ntype = endpoint\ncontext = from-trunk\ndisallow = all\nallow = ulaw\ndirect_media = no\n"
                      "rtp_symmetric = yes\nstir_shaken_profile = verify\n\n"
                      "[trunk-ip]\ntype = identify\nendpoint = trunk\nmatch = 127.0.0.1\n",
        "rtp.conf": "[general]\nrtpstart = 10000\nrtpend = 19999\n",
        # As README gives it, with the test authority's CA, and the x5u on plain HTTP on loopback allowed.
        "stir_shaken.conf": f"[attestation]\ntype = attestation\n\n[verification]\ntype = verification\n"
                            f"ca_file = {authority.ca_file}\ncert_cache_dir = {cache}\nfailure_action = continue\n"
                            "relax_x5u_port_scheme_restrictions = yes\nx5u_permit = 127.0.0.1/32\n\n"
                            "[verify]\ntype = profile\nendpoint_behavior = verify\n",
    }
    extensions = (f"[globals]\nPBXGUARD_SERVER=127.0.0.1:{daemon.agi_port}\n\n"
                  f"#include {DIALPLAN / 'asterisk' / 'extensions_pbxguard.conf'}\n"
                  "[from-trunk]\nexten => _X.,1,Gosub(pbxguard-screen,s,1(inbound,,${EXTEN}))\n same => n,Hangup()\n")
    asterisk = Asterisk(tmp_path / "asterisk", extensions, configs, extra_modules=STIR_MODULES)
    url = certificates.url

    def identity(**kw) -> str:
        return "Identity: " + authority.passport(CALLER, "5550100", **{"x5u": url, **kw})

    cases = {  # number: (headers, From parameters, expected identity, policy signal)
        "70011": ([identity()], "", ("verified", "A", "success"), ""),
        "70021": ([identity(attest="C")], "", ("verified", "C", "success"), "ATTESTATION_C"),
        "70031": ([identity(tamper=True)], "", ("failed", "", "signature_validation"), "ATTESTATION_FAILED"),
        "70041": ([identity(iat=time.time() - 120)], "", ("failed", "", "iat_range_error"), "ATTESTATION_FAILED"),
        "70051": ([identity(x5u="http://127.0.0.1:9/sp.pem")], "", ("failed", "", "cert_retrieval_failure"), "ATTESTATION_FAILED"),
        "70061": ([], "", ("missing", "", "missing_identity_hdr"), ""),  # missing_action is off
        "70071": ([f"P-Asserted-Identity: <sip:{CALLER};verstat=TN-Validation-Passed@127.0.0.1;user=phone>"], "",
                  ("verified", "", "TN-Validation-Passed"), ""),
        "70081": ([], ";verstat=TN-Validation-Failed", ("failed", "", "TN-Validation-Failed"), "ATTESTATION_FAILED"),
        "70091": (['P-Asserted-Identity: <sip:x;verstat="><script>@h>'], "", ("missing", "", "missing_identity_hdr"), ""),
    }
    try:
        with ThreadPoolExecutor(len(cases)) as pool:
            for k, (number, (headers, params, _, _)) in enumerate(cases.items()):
                pool.submit(place, tmp_path, port, number, [f"Date: {stir.sip_date()}", *headers], params, opening, k)
        records = {number: daemon.record_for(number, timeout=20) for number in cases}
        log = asterisk.log()
    finally:
        asterisk.stop()
        certificates.close()
        daemon.stop()
    for number, (_, _, (status, level, detail), signal) in cases.items():
        record = records[number]
        assert record.status == "screened" and record.caller == CALLER, (number, record)
        assert record.identity == {"status": status, "attestation": level, "detail": detail}, (number, record.identity)
        if signal:
            assert record.action == "CHALLENGE" and record.reason.endswith("+" + signal), (number, record)
        else:
            assert "ATTESTATION" not in record.reason, (number, record)
    assert "Function STIR_SHAKEN not registered" not in log and "requires a PJSIP channel" not in log

    with serving(Path(daemon.rundir)) as client:  # the admin's page shows it
        client.login()
        body = client.get(f"/calls/{records['70031'].call_id}")[2].decode()
    assert "failed (signature_validation)" in body


def test_freeswitch_passes_a_carriers_verstat(freeswitch_prefix, tmp_path, opening):
    from tests.pbx.test_freeswitch import PBX

    daemon = Daemon(callerid=CHALLENGING, freeswitch={"enabled": True, "port": 0, "recordings": str(tmp_path / "recordings")})
    pbx = PBX(tmp_path, daemon)
    cases = {  # number: (headers, From parameters, expected identity)
        "5557001": ([f"P-Asserted-Identity: <sip:{CALLER};verstat=TN-Validation-Passed@127.0.0.1;user=phone>"], "",
                    {"status": "verified", "attestation": "", "detail": "TN-Validation-Passed"}),
        "5557011": ([], ";verstat=TN-Validation-Failed", {"status": "failed", "attestation": "", "detail": "TN-Validation-Failed"}),
        "5557021": ([], "", None),  # an unsigned call on a FreeSWITCH that verifies nothing: not checked
    }
    try:
        with ThreadPoolExecutor(len(cases)) as pool:
            for k, (number, (headers, params, _)) in enumerate(cases.items()):
                pool.submit(place, tmp_path, pbx.fs.sip_port, number, headers, params, opening, k)
        records = {number: daemon.record_for(number, timeout=20) for number in cases}
    finally:
        pbx.stop()
        daemon.stop()
    for number, (_, _, identity) in cases.items():
        record = records[number]
        assert record.status == "screened" and record.caller == CALLER, (number, record)
        assert record.identity == identity, (number, record.identity)
    assert records["5557011"].action == "CHALLENGE" and records["5557011"].reason.endswith("+ATTESTATION_FAILED")
