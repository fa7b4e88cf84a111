"""Firmware and logs on a site without internet, with real chargers (the `ocpp` package, 1.6 and 2.0.1) over
real sockets: the charger downloads the image from the edge's own HTTP server and reports each step; it
uploads its log to the edge (multipart POST or a raw PUT), once, within the size limit; the owner follows it
all from the API and the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.error
import urllib.request
import uuid

from conftest import SITEKEEPER, wait_for
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from test_operations import call, connected

IMAGE = bytes(range(256)) * 4096  # 1 MiB, every byte value


def http(method: str, url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Updating16(CP16):
    """A 1.6 charger that downloads the firmware it is told of over HTTP and reports each step."""

    got: dict

    @on("UpdateFirmware")
    def update(self, location, retrieve_date, **kw):
        self.got["location"] = location
        return result16.UpdateFirmware()

    @after("UpdateFirmware")
    def download(self, location, retrieve_date, **kw):
        asyncio.get_running_loop().create_task(self._download(location))

    async def _download(self, location: str) -> None:
        await self.call(call16.FirmwareStatusNotification(status="Downloading"))
        status, body = await asyncio.to_thread(http, "GET", location)
        self.got["image"] = body
        if status != 200:
            await self.call(call16.FirmwareStatusNotification(status="DownloadFailed"))
            return
        for step in ("Downloaded", "Installing", "Installed"):
            await self.call(call16.FirmwareStatusNotification(status=step))

    @on("GetDiagnostics")
    def diagnostics(self, location, **kw):
        self.got["log_location"] = location
        return result16.GetDiagnostics(file_name="diag.txt")

    @after("GetDiagnostics")
    def upload(self, location, **kw):
        asyncio.get_running_loop().create_task(self._upload(location))

    async def _upload(self, location: str) -> None:
        await self.call(call16.DiagnosticsStatusNotification(status="Uploading"))
        status, _ = await asyncio.to_thread(http, "PUT", f"{location}/diag.txt", self.got["log"])
        self.got["upload_status"] = status
        await self.call(call16.DiagnosticsStatusNotification(status="Uploaded" if status == 201 else "UploadFailed"))


class Logging201(CP201):
    """A 2.0.1 charger that uploads its log as multipart/form-data (as curl -F does) and reports it."""

    got: dict

    @on("GetLog")
    def get_log(self, log, log_type, request_id, **kw):
        self.got["request_id"] = request_id
        return result201.GetLog(status="Accepted", filename="station.log")

    @after("GetLog")
    def upload(self, log, log_type, request_id, **kw):
        asyncio.get_running_loop().create_task(self._upload(log["remote_location"], request_id))

    async def _upload(self, location: str, request_id: int) -> None:
        await self.call(call201.LogStatusNotification(status="Uploading", request_id=request_id))
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"station.log\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + self.got["log"] + \
            f"\r\n--{boundary}--\r\n".encode()
        status, _ = await asyncio.to_thread(http, "POST", location, body,
                                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        self.got["upload_status"] = status
        self.got["location"] = location
        await self.call(call201.LogStatusNotification(status="Uploaded" if status == 201 else "UploadFailure",
                                                      request_id=request_id))

    @on("UpdateFirmware")
    def update(self, request_id, firmware, **kw):
        return result201.UpdateFirmware(status="Rejected")


def cli(edge, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run([SITEKEEPER, "--config", str(edge.config_path), *words], capture_output=True, text=True,
                          timeout=120)


async def test_a_16_charger_updates_its_firmware_from_the_edge_and_the_owner_follows_it(edge_factory, tmp_path):
    edge = edge_factory({})
    image = tmp_path / "acme-2.1.bin"
    image.write_bytes(IMAGE)
    out = cli(edge, "firmware", "add", str(image))
    assert out.returncode == 0 and "1048576 bytes" in out.stdout, out.stderr
    assert "acme-2.1.bin" in cli(edge, "firmware", "list").stdout
    assert cli(edge, "firmware", "add", str(image)).returncode == 2, "the same name twice is refused"
    ch = await connected(edge, "FW16", "1.6", Updating16)
    ch.cp.got = {}
    try:
        status, out = await call(edge, "POST", "/api/chargers/FW16/firmware", {"file": "nope.bin"})
        assert status == 404 and "nope.bin" in out["detail"]
        status, out = await call(edge, "POST", "/api/chargers/FW16/firmware", {"file": "acme-2.1.bin"})
        assert status == 200 and out["status"] == "answered" and out["action"] == "UpdateFirmware", out
        location = out["transfer"]["location"]
        assert location.startswith(f"http://127.0.0.1:{edge.web_port}/files/firmware/") and \
            location.endswith("/acme-2.1.bin")
        await wait_for(lambda: ch.cp.got.get("image") is not None)
        assert ch.cp.got["image"] == IMAGE, "the charger got the image whole"

        async def installed() -> bool:
            return (await call(edge, "GET", "/api/chargers/FW16/firmware"))[1][0]["status"] == "Installed"
        for _ in range(100):
            if await installed():
                break
            await asyncio.sleep(0.1)
        rows = (await call(edge, "GET", "/api/chargers/FW16/firmware"))[1]
        assert [s for _, s in rows[0]["history"]] == ["requested", "Downloading", "Downloaded", "Installing",
                                                      "Installed"]
        assert rows[0]["who"] == "local"
        status, _ = await asyncio.to_thread(http, "GET", location)
        assert status == 404, "once installed, the download address is closed"
        secret = location.split("/")[-2]
        assert (await asyncio.to_thread(http, "GET", location.replace(secret, "x" * len(secret))))[0] == 404
        # the CLI follows another update to its end
        out = await asyncio.to_thread(cli, edge, "charger", "FW16", "firmware", "acme-2.1.bin", "--follow")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Downloading" in out.stdout and "Installed" in out.stdout
        table = (await asyncio.to_thread(cli, edge, "charger", "FW16", "firmware")).stdout
        assert table.count("Installed") == 2
    finally:
        await ch.close()


async def test_a_201_charger_refuses_an_update_and_uploads_its_log_once(edge_factory):
    edge = edge_factory({"operations": {"max_upload_mb": 0.5}})
    ch = await connected(edge, "LG201", "2.0.1", Logging201)
    ch.cp.got = {"log": b"2026-12-02 boot ok\n" * 1000}
    try:
        image = edge.workdir / "fw.bin"
        image.write_bytes(b"x" * 100)
        assert cli(edge, "firmware", "add", str(image)).returncode == 0
        status, out = await call(edge, "POST", "/api/chargers/LG201/firmware", {"file": "fw.bin"})
        assert out["response"] == {"status": "Rejected"}
        rows = (await call(edge, "GET", "/api/chargers/LG201/firmware"))[1]
        assert rows[0]["status"] == "refused", "a refused update is recorded so, and its address closed"
        status, out = await call(edge, "POST", "/api/chargers/LG201/logs")
        assert status == 200 and out["action"] == "GetLog" and out["response"]["status"] == "Accepted", out
        assert ch.cp.got["request_id"] == out["transfer"]["id"], "the requestId names the transfer"
        await wait_for(lambda: ch.cp.got.get("upload_status") is not None)
        assert ch.cp.got["upload_status"] == 201
        for _ in range(100):
            rows = (await call(edge, "GET", "/api/chargers/LG201/logs"))[1]
            if rows[0]["status"] == "Uploaded":
                break
            await asyncio.sleep(0.1)
        assert [s for _, s in rows[0]["history"]] == ["requested", "Uploading", "received", "Uploaded"]
        assert rows[0]["file"] == "station.log" and rows[0]["size"] == len(ch.cp.got["log"])
        n = rows[0]["id"]
        got = await asyncio.to_thread(cli, edge, "charger", "LG201", "logs", "--get", str(n), "-o",
                                      str(edge.workdir / "got.log"))
        assert got.returncode == 0, got.stderr
        assert (edge.workdir / "got.log").read_bytes() == ch.cp.got["log"], "the upload kept whole"
        status, _ = await asyncio.to_thread(http, "POST", ch.cp.got["location"], b"again")
        assert status == 404, "the upload address works once"
        # too big: refused, and nothing kept
        ch.cp.got = {"log": b"y" * 600_000}
        status, out = await call(edge, "POST", "/api/chargers/LG201/logs")
        await wait_for(lambda: ch.cp.got.get("upload_status") is not None)
        assert ch.cp.got["upload_status"] == 413
        for _ in range(100):
            rows = (await call(edge, "GET", "/api/chargers/LG201/logs"))[1]
            if rows[0]["status"] == "UploadFailure":
                break
            await asyncio.sleep(0.1)
        assert rows[0]["status"] == "UploadFailure" and rows[0]["size"] is None
        assert (await call(edge, "GET", f"/api/chargers/LG201/logs/{rows[0]['id']}"))[0] == 404
        assert (await call(edge, "GET", f"/api/chargers/LG201/logs/{n}", token=""))[0] == 401, "logs need a token"
    finally:
        await ch.close()


async def test_a_16_charger_puts_its_diagnostics(edge_factory):
    edge = edge_factory({})
    ch = await connected(edge, "DG16", "1.6", Updating16)
    ch.cp.got = {"log": b"\x00\x01binary diagnostics\xff" * 50}
    try:
        out = await asyncio.to_thread(cli, edge, "charger", "DG16", "logs", "--request", "--follow")
        assert out.returncode == 0 and "Uploaded" in out.stdout, out.stdout + out.stderr
        rows = (await call(edge, "GET", "/api/chargers/DG16/logs"))[1]
        assert rows[0]["file"] == "diag.txt" and rows[0]["size"] == len(ch.cp.got["log"])
        got = await asyncio.to_thread(subprocess.run, [SITEKEEPER, "--config", str(edge.config_path), "charger",
                                                       "DG16", "logs", "--get", str(rows[0]["id"])],
                                      capture_output=True, timeout=60)
        assert got.returncode == 0 and got.stdout == ch.cp.got["log"], "to standard output, byte for byte"
        listed = await asyncio.to_thread(cli, edge, "charger", "DG16", "logs")
        assert "diag.txt" in listed.stdout and "Uploaded" in listed.stdout
    finally:
        await ch.close()
