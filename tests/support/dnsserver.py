"""A real DNS server on loopback for tests: UDP and TCP on 127.0.0.1, port 0, dnspython messages.

Records are configured per test and the server answers like an authoritative
server would: NXDOMAIN for a name it has never heard of, an empty NOERROR
answer for a known name without the asked type, CNAMEs followed, answers too
big for UDP truncated (TC) so the client retries over TCP. Every query is
kept in :attr:`DNSServer.queries` so a test can check caching.

    with DNSServer() as dns_server:
        dns_server.mx("example.com", (10, "mx1.example.com"), (20, "mx2.example.com"))
        dns_server.a("mx1.example.com", "127.0.0.1")
        dns_server.dkim("example.com", "s1", "v=DKIM1; k=rsa; p=MIIB...")
        resolver = dns_server.resolver()
        resolver.resolve("example.com", "MX")

As a pytest fixture (``tests/conftest.py`` is the lead's; define it locally)::

    @pytest.fixture
    def dns_server() -> Iterator[DNSServer]:
        with DNSServer() as server:
            yield server
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from dataclasses import dataclass
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

_UDP_LIMIT = 512


@dataclass(frozen=True)
class Query:
    name: str
    rdtype: str
    transport: str  # "udp" | "tcp"


def _key(name: str) -> str:
    return name.rstrip(".").lower() + "."


def txt_strings(value: str) -> str:
    """A TXT value as the quoted <=255-byte strings the wire format needs (DKIM keys are longer)."""
    raw = value.encode()
    chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    return " ".join(
        '"' + c.decode().replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks
    )


class DNSServer:
    """An authoritative-style server for whatever names a test configures."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._records: dict[tuple[str, str], tuple[int, list[str]]] = {}
        self._failing: dict[str, dns.rcode.Rcode] = {}
        self._lock = threading.Lock()
        self.queries: list[Query] = []
        self._udp: socketserver.ThreadingUDPServer | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- configuration -------------------------------------------------------------------
    def add(self, name: str, rdtype: str, *values: str, ttl: int = 300) -> DNSServer:
        """Add records in zone-file text form, e.g. ``add("x.test", "MX", "10 mx.x.test.")``."""
        with self._lock:
            key = (_key(name), rdtype.upper())
            old = self._records.get(key, (ttl, []))[1]
            self._records[key] = (ttl, old + list(values))
        return self

    def remove(self, name: str, rdtype: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._records if k[0] == _key(name)
                        and (rdtype is None or k[1] == rdtype.upper())]:
                del self._records[key]

    def mx(self, domain: str, *hosts: tuple[int, str], ttl: int = 300) -> DNSServer:
        return self.add(domain, "MX", *(f"{pref} {_key(host)}" for pref, host in hosts), ttl=ttl)

    def null_mx(self, domain: str, ttl: int = 300) -> DNSServer:
        """RFC 7505: a single MX of preference 0 and target "." means "accepts no mail"."""
        return self.add(domain, "MX", "0 .", ttl=ttl)

    def a(self, name: str, *addresses: str, ttl: int = 300) -> DNSServer:
        return self.add(name, "A", *addresses, ttl=ttl)

    def aaaa(self, name: str, *addresses: str, ttl: int = 300) -> DNSServer:
        return self.add(name, "AAAA", *addresses, ttl=ttl)

    def cname(self, name: str, target: str, ttl: int = 300) -> DNSServer:
        return self.add(name, "CNAME", _key(target), ttl=ttl)

    def txt(self, name: str, *values: str, ttl: int = 300) -> DNSServer:
        return self.add(name, "TXT", *(txt_strings(v) for v in values), ttl=ttl)

    def dkim(self, domain: str, selector: str, record: str, ttl: int = 300) -> DNSServer:
        """The DKIM key record ``selector._domainkey.domain`` (RFC 6376 §3.6.2)."""
        return self.txt(f"{selector}._domainkey.{domain}", record, ttl=ttl)

    def fail(self, name: str, rcode: dns.rcode.Rcode = dns.rcode.SERVFAIL) -> None:
        """Answer every query for ``name`` with ``rcode`` (SERVFAIL by default)."""
        with self._lock:
            self._failing[_key(name)] = rcode

    def count(self, name: str, rdtype: str | None = None) -> int:
        with self._lock:
            return sum(1 for q in self.queries if q.name == _key(name)
                       and (rdtype is None or q.rdtype == rdtype.upper()))

    # -- answering -----------------------------------------------------------------------
    def _answer(self, wire: bytes, transport: str) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:  # garbage gets no answer, like a real server
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append(Query(name, rdtype, transport))
            failing = self._failing.get(name)
            records = dict(self._records)
        if failing is not None:
            response.set_rcode(failing)
            return response.to_wire()
        known = {k[0] for k in records}
        current = name
        for _ in range(8):  # CNAME chains, bounded
            if (current, rdtype) in records:
                ttl, values = records[(current, rdtype)]
                response.answer.append(dns.rrset.from_text_list(current, ttl, "IN", rdtype, values))
                break
            if rdtype != "CNAME" and (current, "CNAME") in records:
                ttl, values = records[(current, "CNAME")]
                response.answer.append(
                    dns.rrset.from_text_list(current, ttl, "IN", "CNAME", values))
                current = values[0].lower()
                continue
            if current not in known:
                response.set_rcode(dns.rcode.NXDOMAIN)
            break
        if not response.answer and response.rcode() == dns.rcode.NOERROR:
            # NODATA: a negative answer carries an SOA whose minimum sets the negative TTL.
            zone = ".".join(name.split(".")[-3:]) or "."
            response.authority.append(dns.rrset.from_text(
                zone, 60, "IN", "SOA", f"ns.{zone} hostmaster.{zone} 1 3600 600 86400 60"))
        out = response.to_wire()
        if transport == "udp" and len(out) > _UDP_LIMIT:
            response.answer.clear()
            response.flags |= dns.flags.TC
            out = response.to_wire()
        return out

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> DNSServer:
        server = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                answer = server._answer(data, "udp")
                if answer is not None:
                    sock.sendto(answer, self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(5)
                try:
                    while True:
                        head = conn.recv(2, socket.MSG_WAITALL)
                        if len(head) < 2:
                            return
                        (size,) = struct.unpack("!H", head)
                        answer = server._answer(conn.recv(size, socket.MSG_WAITALL), "tcp")
                        if answer is None:
                            return
                        conn.sendall(struct.pack("!H", len(answer)) + answer)
                except OSError:
                    return

        # UDP and TCP must share one port number: retry until the TCP side gets the UDP port.
        for _ in range(20):
            udp = socketserver.ThreadingUDPServer((self.host, 0), UDPHandler)
            port = udp.server_address[1]
            tcp = socketserver.ThreadingTCPServer((self.host, port), TCPHandler,
                                                  bind_and_activate=False)
            try:
                tcp.allow_reuse_address = True
                tcp.server_bind()
                tcp.server_activate()
            except OSError:
                # The port is taken for TCP: close both sockets, or the garbage collector
                # reports the TCP one unclosed in whatever test runs next.
                tcp.server_close()
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        udp.daemon_threads = tcp.daemon_threads = True
        self._udp, self._tcp, self.port = udp, tcp, int(port)
        for srv in (udp, tcp):
            thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for srv in (self._udp, self._tcp):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._udp = self._tcp = None
        self._threads.clear()

    def resolver(self, *, lifetime: float = 2.0, cache: bool = False) -> dns.resolver.Resolver:
        """A resolver that asks only this server (no /etc/resolv.conf, no other network)."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.lifetime = lifetime
        resolver.timeout = lifetime
        if cache:
            resolver.cache = dns.resolver.Cache()
        return resolver

    def __enter__(self) -> DNSServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

