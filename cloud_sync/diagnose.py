"""Why the broker cannot be reached, in words an installer can act on: the name does not resolve, nothing
listens on the port, nothing answers, or TLS fails (and how). paho only says that it failed; this asks each
layer in turn (DNS, TCP, TLS) once, when a connection attempt fails."""

from __future__ import annotations

import socket
import ssl


def why_unreachable(host: str, port: int, tls: ssl.SSLContext | None, timeout: float = 5.0) -> str:
    """One line saying where the way to `host:port` breaks, or that TCP (and TLS) work and MQTT failed."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return f"DNS: the name {host} does not resolve ({e.strerror})"
    family, kind, proto, _, address = addresses[0]
    try:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        sock.connect(address)
    except ConnectionRefusedError:
        return f"refused: nothing listens on {host}:{port}"
    except TimeoutError:
        return f"no answer from {host}:{port} in {timeout:g} s (a firewall, or the link is down)"
    except OSError as e:
        return f"cannot reach {host}:{port}: {e.strerror or e}"
    try:
        if tls is not None:
            try:
                with tls.wrap_socket(sock, server_hostname=host) as wrapped:
                    wrapped.settimeout(timeout)
            except ssl.SSLCertVerificationError as e:
                return f"TLS: the broker's certificate is not trusted: {e.verify_message}"
            except ssl.SSLError as e:
                return f"TLS: {e.reason or e} (is the broker's port TLS? check mqtt.port, mqtt.tls and mqtt.ca_file)"
            except (OSError, TimeoutError) as e:
                return f"TLS: the broker closed the connection during the handshake ({e or type(e).__name__})"
    finally:
        sock.close()
    return (f"{host}:{port} answers{' TLS' if tls else ''} but the MQTT connection failed"
            + ("" if tls else " (a TLS port? set mqtt.tls = true)"))
