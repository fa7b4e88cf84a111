"""The web app over HTTPS (`web.tls_cert`, `web.tls_key`): the pages answer over TLS with the site's
certificate, the session cookie is then Secure, the CLI on the Pi still reaches the API, and a config with
only one of the two files does not start."""

from __future__ import annotations

import http.cookiejar
import subprocess
import urllib.parse
import urllib.request

import pytest
from conftest import SITEKEEPER
from pki import make_pki
from test_web_login import admin


def test_pages_over_https_with_a_secure_cookie(edge_factory, tmp_path):
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    edge = edge_factory({"web": {"tls_cert": str(pki.server_cert), "tls_key": str(pki.server_key)}})
    assert "web at https://" in edge.log()
    made = admin(edge, "add", "boss", "--role", "owner", password="correct horse 1\n")
    assert made.returncode == 0, made.stderr
    context = pki.client_context()
    context.check_hostname = False
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                         urllib.request.HTTPCookieProcessor(jar))
    base = f"https://127.0.0.1:{edge.web_port}"
    page = opener.open(base + "/login", timeout=10).read().decode()
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    data = urllib.parse.urlencode({"csrf": csrf, "name": "boss", "password": "correct horse 1", "next": "/"})
    answer = opener.open(base + "/login", data=data.encode(), timeout=10)
    assert answer.status == 200 and "Dashboard" in answer.read().decode()
    session = next(c for c in jar if c.name == "sk_session")
    assert session.secure, "over HTTPS the session cookie is Secure"
    with pytest.raises(OSError):  # refused or cut off: nothing but TLS
        urllib.request.urlopen(f"http://127.0.0.1:{edge.web_port}/login", timeout=5)  # no plain HTTP
    out = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "charger", "list"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_one_of_the_two_files_is_refused(edge_factory, tmp_path):
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "half.toml").write_text(f'[web]\ntls_cert = "{pki.server_cert}"\n')
    out = subprocess.run([SITEKEEPER, "--config", str(tmp_path / "half.toml"), "run"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "web.tls_cert" in out.stderr and "web.tls_key" in out.stderr
