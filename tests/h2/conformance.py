#!/usr/bin/python3
"""HTTP/2 server conformance suite (RFC 9113 and RFC 7541).

Drives an HTTP/2 server with hand-built frames, one fresh connection per test,
and checks what the RFCs say a server MUST do: the connection preface, frame
format and size rules, stream states, every frame type's error cases, flow
control, header block (HPACK) errors, malformed requests, a few ordinary
exchanges, and flood patterns that a server has to cut short.

Run it with Debian's interpreter, which has python3-hpack and
python3-hyperframe (installed with python3-h2):

    /usr/bin/python3 tests/h2/conformance.py --port 8443 --tls
    /usr/bin/python3 tests/h2/conformance.py --port 8080 --path /index.html
    /usr/bin/python3 tests/h2/conformance.py --port 8080 -k 6.5      # SETTINGS tests
    /usr/bin/python3 tests/h2/conformance.py --port 8080 -k flood    # flood tests
    /usr/bin/python3 tests/h2/conformance.py --list

Without --tls the suite speaks cleartext HTTP/2 with prior knowledge; with
--tls it negotiates "h2" by ALPN and does not verify the certificate.  --path
must name a resource that answers GET with 200 and a non-empty body; POST to it
must be answered too.  --timeout bounds every single wait (default 3 s); a test
that hangs is failed, it never blocks the suite.

Test ids are RFC 9113 section numbers ("6.5.2/1"), "hpack/<RFC 7541
section>/n", "basic/n" for ordinary exchanges and "flood-<pattern>".

Output, one line per test, then a summary ("N passed, M failed, K skipped"):

    PASS <id> <title>[ -- note]
    FAIL <id> <title> -- <reason>
    SKIP <id> <title> -- <reason>

A note on PASS records which of several allowed behaviours the server chose
(a connection error where a stream error was enough, a 400 response instead of
RST_STREAM, the error code and frame count of a flood).  The exit status is 0
only when no test failed.

What counts as the expected reaction:
  connection error X  a GOAWAY with code X (closing the connection right after
                      it is fine).  Only an invalid preface may be answered by
                      closing without GOAWAY (RFC 9113 section 3.4).
  stream error X      RST_STREAM with code X on that stream, or a connection
                      error X.
  malformed request   (RFC 9113 section 8.1.1) a stream error PROTOCOL_ERROR,
                      or a 400 response.
  STREAM_CLOSED       a stream or connection error STREAM_CLOSED; once the
                      stream is closed (not merely half-closed) ignoring the
                      frame is accepted too (RFC 9113 section 5.1).
  floods              the server ends the connection (GOAWAY with any code, or
                      a close) before the flood is over.
Tests that check the server carried on send a PING and wait for its ACK.  Error
tests also send a PING after the offending frame: once its ACK arrives the
server has processed the frame, so the expected error gets only a short grace
period instead of the full timeout.

Results against nghttpd (nghttp2 1.52, Debian 12); everything else passes:
  5.1.1/2           nghttpd ignores HEADERS on a stream id lower than one
                    already used instead of failing the connection.
  flood-empty-data  nghttpd has no limit on empty DATA frames.
  flood-priority    nghttpd has no limit on PRIORITY frames.
  flood-ping,       over cleartext only: the socket buffers absorb all the
  flood-settings    ACKs, so nghttp2's limit of 1000 queued ACKs is never
                    reached; over TLS it reads larger batches, hits the limit
                    and closes the connection.
  6.8/2 is always skipped.
"""

import argparse
import collections
import functools
import itertools
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time
import traceback

from hpack import Decoder, Encoder
from hpack.exceptions import HPACKError
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame,
                              GoAwayFrame, HeadersFrame, PingFrame,
                              PushPromiseFrame, RstStreamFrame, SettingsFrame,
                              WindowUpdateFrame)

# --------------------------------------------------------------------------
# Protocol constants (RFC 9113 sections 3.4, 6, 7 and 11)

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'

(DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY,
 WINDOW_UPDATE, CONTINUATION) = range(10)
FRAME_NAMES = ['DATA', 'HEADERS', 'PRIORITY', 'RST_STREAM', 'SETTINGS',
               'PUSH_PROMISE', 'PING', 'GOAWAY', 'WINDOW_UPDATE', 'CONTINUATION']
UNKNOWN_FRAME_TYPE = 0xEE       # not assigned to any extension

END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT,
 STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR,
 CONNECT_ERROR, ENHANCE_YOUR_CALM, INADEQUATE_SECURITY,
 HTTP_1_1_REQUIRED) = range(14)
ERROR_NAMES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR',
               'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED',
               'FRAME_SIZE_ERROR', 'REFUSED_STREAM', 'CANCEL',
               'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM',
               'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED']

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8
SETTING_NAMES = {1: 'HEADER_TABLE_SIZE', 2: 'ENABLE_PUSH',
                 3: 'MAX_CONCURRENT_STREAMS', 4: 'INITIAL_WINDOW_SIZE',
                 5: 'MAX_FRAME_SIZE', 6: 'MAX_HEADER_LIST_SIZE'}

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME_SIZE = 16384
DEFAULT_HEADER_TABLE_SIZE = 4096

# --------------------------------------------------------------------------
# Suite tuning

PROBE_GRACE = 0.5     # wait for an error this long after a later PING's ACK
SETTLE_TIME = 0.2     # watch for frames the server must not send
FLOOD_SECONDS = 3.0   # a flood stops after this long ...
FLOOD_STALL = 1.0     # ... or when the server has not read anything for this long
FLOOD_GRACE = 1.0     # after the flood, wait this long for the server to end it


def error_name(code):
    return ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else f'0x{code:x}'


# --------------------------------------------------------------------------
# Frame building.  Everything is raw bytes so that tests can build frames that
# break the rules; hyperframe is only used to parse what the server sends.

def frame(ftype, flags=0, stream_id=0, payload=b'', reserved_bit=False):
    header = struct.pack('>I', len(payload))[1:] + struct.pack(
        '>BBI', ftype, flags, stream_id | (0x80000000 if reserved_bit else 0))
    return header + payload


def settings_frame(settings=None, ack=False):
    payload = b''.join(struct.pack('>HI', key, value)
                       for key, value in (settings or {}).items())
    return frame(SETTINGS, ACK if ack else 0, 0, payload)


def ping_frame(payload, ack=False):
    return frame(PING, ACK if ack else 0, 0, payload)


def rst_stream_frame(stream_id, code):
    return frame(RST_STREAM, 0, stream_id, struct.pack('>I', code))


def window_update_frame(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack('>I', increment))


def goaway_frame(last_stream_id, code, stream_id=0):
    return frame(GOAWAY, 0, stream_id, struct.pack('>II', last_stream_id, code))


def priority_fields(depends_on, weight=16, exclusive=False):
    """The 5-octet priority block of PRIORITY and HEADERS frames."""
    return struct.pack('>IB', depends_on | (0x80000000 if exclusive else 0),
                       weight - 1)


def priority_frame(stream_id, depends_on, weight=16):
    return frame(PRIORITY, 0, stream_id, priority_fields(depends_on, weight))


def hpack_int(value, prefix_bits, first_byte=0):
    """An HPACK integer (RFC 7541 section 5.1) with flag bits in first_byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = bytearray([first_byte | limit])
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack_literal(name_index, value, huffman):
    """Literal field without indexing, indexed name (RFC 7541 section 6.2.2);
    value is used as is, so it can be a deliberately broken Huffman string."""
    return (hpack_int(name_index, 4) +
            hpack_int(len(value), 7, 0x80 if huffman else 0) + value)


def field_value(fields, name):
    for key, value in fields or ():
        if key == name:
            return value
    return None


def describe(f):
    """One-line summary of a frame received from the server."""
    sid = f.stream_id
    end = ', END_STREAM' if 'END_STREAM' in f.flags else ''
    if isinstance(f, DataFrame):
        return f'DATA(stream {sid}, {len(f.data)} octets{end})'
    if isinstance(f, HeadersFrame):
        fields = getattr(f, 'fields', [])
        status = field_value(fields, ':status')
        what = f':status {status}' if status else f'{len(fields)} fields'
        return f'HEADERS(stream {sid}, {what}{end})'
    if isinstance(f, RstStreamFrame):
        return f'RST_STREAM(stream {sid}, {error_name(f.error_code)})'
    if isinstance(f, SettingsFrame):
        if 'ACK' in f.flags:
            return 'SETTINGS(ACK)'
        return 'SETTINGS(%s)' % ', '.join(
            f'{SETTING_NAMES.get(k, hex(k))}={v}' for k, v in f.settings.items())
    if isinstance(f, PingFrame):
        return f"PING({'ACK, ' if 'ACK' in f.flags else ''}{f.opaque_data.hex()})"
    if isinstance(f, GoAwayFrame):
        debug = f', "{f.additional_data.decode("latin-1")}"' if f.additional_data else ''
        return f'GOAWAY({error_name(f.error_code)}, last stream {f.last_stream_id}{debug})'
    if isinstance(f, WindowUpdateFrame):
        return f'WINDOW_UPDATE(stream {sid}, +{f.window_increment})'
    return f'{type(f).__name__}(stream {sid})'


def describe_outgoing(data):
    """Summaries of the frames in bytes about to be sent (for -v)."""
    lines = []
    if data.startswith(PREFACE):
        lines.append('connection preface')
        data = data[len(PREFACE):]
    while len(data) >= 9:
        length = int.from_bytes(data[:3], 'big')
        ftype, flags, sid = struct.unpack('>BBI', data[3:9])
        name = FRAME_NAMES[ftype] if ftype < len(FRAME_NAMES) else f'type 0x{ftype:x}'
        line = f'{name}(stream {sid & 0x7fffffff}, flags 0x{flags:x}, length {length})'
        if ftype in (PING, SETTINGS, RST_STREAM, WINDOW_UPDATE, GOAWAY) and len(data) >= 9 + length:
            try:
                f, _ = Frame.parse_frame_header(memoryview(data[:9]))
                f.parse_body(memoryview(data[9:9 + length]))
                line = describe(f)
            except HyperframeError:
                line += ', malformed'
        lines.append(line)
        data = data[9 + length:]
    if data:
        lines.append(f'{len(data)} more octets')
    return lines


# --------------------------------------------------------------------------
# Connection helper

class TestFailure(Exception):
    pass


class TestSkipped(Exception):
    pass


class Timeout(Exception):
    """A read deadline passed."""


def fail(reason):
    raise TestFailure(reason)


class StreamState:
    """What the server has sent on one stream so far."""

    def __init__(self):
        self.status = None          # final (non-1xx) :status
        self.headers = None
        self.informational = []
        self.trailers = None
        self.body = bytearray()
        self.received = 0           # flow-controlled octets, padding included
        self.ended = False          # END_STREAM received
        self.reset = None           # RST_STREAM error code


class Event:
    """Something decisive the server did; see Connection.events()."""

    def __init__(self, kind, code=None, stream_id=None, frame=None):
        self.kind, self.code, self.stream_id, self.frame = kind, code, stream_id, frame

    def __str__(self):
        if self.kind in ('goaway', 'rst'):
            return describe(self.frame)
        if self.kind == 'response':
            return f'a {self.code} response on stream {self.stream_id}'
        if self.kind == 'closed':
            return 'a connection close without GOAWAY'
        return 'the PING ACK'


class FloodResult:
    def __init__(self):
        self.sent = 0               # frames (or units) completely written
        self.goaway = None
        self.closed = False
        self.stalled = False        # the server stopped reading


class Connection:
    """One HTTP/2 connection to the server under test.

    Frames are sent as raw bytes and read with a deadline.  Reading keeps the
    bookkeeping a client must do: it decodes header blocks, tracks per-stream
    state and send windows, acknowledges the server's SETTINGS and PINGs and,
    unless auto_window_update is off, gives back the flow-control credit of
    every DATA frame received.
    """

    def __init__(self, cfg, notes, log=None, rcvbuf=None):
        self.cfg = cfg
        self.timeout = cfg.timeout
        self.notes = notes
        self.log = log
        self.sock = self._open(rcvbuf)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.buf = bytearray()
        self.eof = False
        self.pending = collections.deque()   # frames read ahead, not yet consumed
        self.header_block = None            # (HEADERS frame, block) until END_HEADERS
        self.server_settings = {}
        self.first_frame = None
        self.settings_acks = 0
        self.goaway = None
        self.streams = collections.defaultdict(StreamState)
        self.conn_send_window = DEFAULT_WINDOW
        self.stream_send_windows = {}
        self.peer_initial_window = DEFAULT_WINDOW
        self.auto_window_update = True
        self.auto_respond = True
        self.next_stream_id = 1

    def _open(self, rcvbuf):
        host, port = self.cfg.host, self.cfg.port
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(self.timeout)
            sock.connect(addr)
        except OSError as e:
            fail(f'cannot connect to {host}:{port}: {e}')
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self.cfg.tls:
            return sock
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(['h2'])
        try:
            sock = context.wrap_socket(sock, server_hostname=host)
        except OSError as e:
            fail(f'TLS handshake failed: {e}')
        if sock.selected_alpn_protocol() != 'h2':
            fail(f'ALPN did not select h2 (got {sock.selected_alpn_protocol()})')
        return sock

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def note(self, text):
        self.notes.append(text)

    # -- sending ------------------------------------------------------------

    def send(self, data):
        if self.log:
            for line in describe_outgoing(data):
                self.log('>> ' + line)
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
        except socket.timeout:
            fail('timeout while sending: the server stopped reading')
        except OSError:
            pass    # the server closed; reading tells how (GOAWAY or not)

    def handshake(self, settings=None):
        """Sends the preface and our SETTINGS (push disabled, plus `settings`),
        then waits for the server's SETTINGS, which must be its first frame,
        and for the ACK of ours."""
        ours = {SETTINGS_ENABLE_PUSH: 0}
        ours.update(settings or {})
        self.send(PREFACE + settings_frame(ours))
        deadline = self.deadline()
        try:
            while self.first_frame is None or self.settings_acks == 0:
                f = self._read(deadline)
                if f is None:
                    fail('connection closed during the handshake')
                if self.first_frame is None:
                    self.first_frame = f
                    if not isinstance(f, SettingsFrame) or 'ACK' in f.flags:
                        fail(f"server's first frame is {describe(f)}, not SETTINGS")
                if isinstance(f, GoAwayFrame):
                    fail(f'got {describe(f)} during the handshake')
        except Timeout:
            what = "server's SETTINGS" if self.first_frame is None else 'ACK of our SETTINGS'
            fail(f'timeout waiting for the {what}')

    def new_stream(self):
        stream_id = self.next_stream_id
        self.next_stream_id += 2
        return stream_id

    @property
    def max_frame_size(self):
        return self.server_settings.get(SETTINGS_MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE)

    def request_fields(self, method='GET', path=None, extra=()):
        return [(':method', method),
                (':scheme', 'https' if self.cfg.tls else 'http'),
                (':authority', self.cfg.authority),
                (':path', self.cfg.path if path is None else path)] + list(extra)

    def encode(self, fields, huffman=True):
        return self.encoder.encode(fields, huffman=huffman)

    def send_headers(self, stream_id, fields=None, block=None, end_stream=True,
                     end_headers=True, priority=None):
        """HEADERS with an HPACK-encoded `fields` list, or a raw `block`."""
        if block is None:
            block = self.encode(fields)
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        if priority is not None:
            flags |= PRIORITY_FLAG
            block = priority_fields(*priority) + block
        self.send(frame(HEADERS, flags, stream_id, block))

    def request(self, method='GET', path=None, extra=(), end_stream=True):
        """Opens a new stream with a request; returns its id."""
        stream_id = self.new_stream()
        self.send_headers(stream_id, self.request_fields(method, path, extra),
                          end_stream=end_stream)
        return stream_id

    def get(self, path=None, extra=()):
        return self.request('GET', path, extra)

    def stream_send_window(self, stream_id):
        return self.stream_send_windows.get(stream_id, self.peer_initial_window)

    def send_data(self, stream_id, data, end_stream=False):
        """One DATA frame, as is (the caller minds frame size and windows)."""
        self.conn_send_window -= len(data)
        self.stream_send_windows[stream_id] = self.stream_send_window(stream_id) - len(data)
        self.send(frame(DATA, END_STREAM if end_stream else 0, stream_id, data))

    def send_body(self, stream_id, body, chunk=1024, end_stream=True):
        """Sends `body` in DATA frames of at most `chunk` octets, waiting for
        WINDOW_UPDATEs whenever a flow-control window is exhausted."""
        deadline = self.deadline()
        pos = 0
        while True:
            room = min(chunk, self.max_frame_size, self.conn_send_window,
                       self.stream_send_window(stream_id), len(body) - pos)
            if room <= 0 and pos < len(body):
                try:
                    f = self._read(deadline)
                except Timeout:
                    fail(f'timeout waiting for a WINDOW_UPDATE after sending {pos} body octets')
                if f is None or self.goaway is not None or self.streams[stream_id].reset is not None:
                    return      # the caller's expectation reports it
                self.pending.append(f)
                continue
            last = pos + room == len(body)
            if room or end_stream:
                self.send_data(stream_id, body[pos:pos + room], end_stream=end_stream and last)
            pos += room
            if last:
                return
            deadline = self.deadline()

    def update_settings(self, settings):
        """Sends SETTINGS and waits for the server's ACK."""
        acks = self.settings_acks
        self.send(settings_frame(settings))
        deadline = self.deadline()
        while self.settings_acks == acks:
            try:
                f = self.read_frame(deadline)
            except Timeout:
                fail('timeout waiting for the SETTINGS ACK')
            if f is None or isinstance(f, GoAwayFrame):
                fail(f"got {describe(f) if f else 'a connection close'} instead of a SETTINGS ACK")

    # -- receiving ----------------------------------------------------------

    def deadline(self, timeout=None):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _recv(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout()
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout() from None
        except OSError:
            data = b''      # reset by the peer, or a TLS failure: closed
        if not data:
            self.eof = True
        self.buf += data

    def _take_frame(self):
        """Cuts one complete frame off the receive buffer, or returns None."""
        if len(self.buf) < 9:
            return None
        length = int.from_bytes(self.buf[:3], 'big')
        if len(self.buf) < 9 + length:
            return None
        header, body = bytes(self.buf[:9]), bytes(self.buf[9:9 + length])
        del self.buf[:9 + length]
        try:
            f, _ = Frame.parse_frame_header(memoryview(header))
            f.parse_body(memoryview(body))
        except HyperframeError as e:
            fail(f'server sent an invalid frame ({header.hex()}...): {e}')
        return f

    def _read(self, deadline):
        """Next frame from the socket after bookkeeping; None once closed."""
        while True:
            f = self._take_frame()
            if f is None:
                if self.eof:
                    return None
                self._recv(deadline)
                continue
            f = self._process(f)
            if f is not None:
                return f

    def read_frame(self, deadline):
        """Next frame, read ahead ones first; None once the connection is
        closed; raises Timeout at the deadline."""
        if self.pending:
            return self.pending.popleft()
        return self._read(deadline)

    def _process(self, f):
        """Client-side bookkeeping for one frame.  Returns the frame, or None
        while a header block is still incomplete (CONTINUATIONs are merged into
        the HEADERS frame)."""
        if self.header_block is not None:
            first, block = self.header_block
            if not isinstance(f, ContinuationFrame) or f.stream_id != first.stream_id:
                fail(f'server sent {type(f).__name__} inside a header block')
            block += f.data
            if 'END_HEADERS' not in f.flags:
                return None
            self.header_block = None
            first.data = bytes(block)
            f = first
        elif isinstance(f, (HeadersFrame, PushPromiseFrame)) and 'END_HEADERS' not in f.flags:
            self.header_block = (f, bytearray(f.data))
            return None
        elif isinstance(f, ContinuationFrame):
            fail('server sent CONTINUATION without a header block to continue')

        if isinstance(f, (HeadersFrame, PushPromiseFrame)):
            try:
                f.fields = [(n.decode('latin-1'), v.decode('latin-1'))
                            for n, v in self.decoder.decode(f.data, raw=True)]
            except HPACKError as e:
                fail(f"cannot decode the server's header block: {e}")
        if self.log:
            self.log('<< ' + describe(f))
            if isinstance(f, HeadersFrame):
                for name, value in f.fields:
                    self.log(f'     {name}: {value[:100]}')

        st = self.streams[f.stream_id] if f.stream_id else None
        if isinstance(f, HeadersFrame):
            status = field_value(f.fields, ':status')
            if st.status is not None:
                st.trailers = f.fields
            elif status and status.isdigit() and 100 <= int(status) < 200:
                st.informational.append(f.fields)
            else:
                st.status = int(status) if status and status.isdigit() else 0
                st.headers = f.fields
                f.final_response = True
            st.ended |= 'END_STREAM' in f.flags
        elif isinstance(f, DataFrame):
            length = f.flow_controlled_length
            st.body += f.data
            st.received += length
            st.ended |= 'END_STREAM' in f.flags
            if length and self.auto_window_update and self.auto_respond:
                credit = window_update_frame(0, length)
                if not st.ended:
                    credit += window_update_frame(f.stream_id, length)
                self.send(credit)
        elif isinstance(f, RstStreamFrame):
            st.reset = f.error_code
        elif isinstance(f, SettingsFrame):
            if 'ACK' in f.flags:
                self.settings_acks += 1
            else:
                self._apply_server_settings(f.settings)
                if self.auto_respond:
                    self.send(settings_frame(ack=True))
        elif isinstance(f, WindowUpdateFrame):
            if f.stream_id == 0:
                self.conn_send_window += f.window_increment
            else:
                self.stream_send_windows[f.stream_id] = (
                    self.stream_send_window(f.stream_id) + f.window_increment)
        elif isinstance(f, PingFrame):
            if 'ACK' not in f.flags and self.auto_respond:
                self.send(ping_frame(f.opaque_data, ack=True))
        elif isinstance(f, GoAwayFrame):
            self.goaway = f
        return f

    def _apply_server_settings(self, settings):
        for key, value in settings.items():
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                for stream_id in self.stream_send_windows:
                    self.stream_send_windows[stream_id] += delta
                self.peer_initial_window = value
            elif key == SETTINGS_HEADER_TABLE_SIZE and value < self.encoder.header_table_size:
                self.encoder.header_table_size = value
        self.server_settings.update(settings)

    def settle(self, duration=SETTLE_TIME):
        """Reads (and keeps track of) whatever arrives for `duration`."""
        deadline = self.deadline(duration)
        try:
            while self._read(deadline) is not None:
                pass
        except Timeout:
            pass

    # -- expectations -------------------------------------------------------

    def events(self, stream_id=None, probe=True):
        """Yields, in order, the decisive things the server does: 'goaway',
        'closed', and for `stream_id` 'rst' and 'response' (a final status).
        With `probe`, a PING is sent first; its ACK is yielded as 'ping' and
        cuts the remaining wait to PROBE_GRACE.  Raises Timeout at the end."""
        deadline = self.deadline()
        token = os.urandom(8) if probe else None
        if probe:
            self.send(ping_frame(token))
        if self.goaway is not None:
            yield Event('goaway', self.goaway.error_code, frame=self.goaway)
        if stream_id in self.streams and self.streams[stream_id].reset is not None:
            yield Event('rst', self.streams[stream_id].reset, stream_id,
                        RstStreamFrame(stream_id, self.streams[stream_id].reset))
        while True:
            f = self.read_frame(deadline)
            if f is None:
                yield Event('closed')
                raise Timeout()     # callers never resume after 'closed'
            if isinstance(f, GoAwayFrame):
                yield Event('goaway', f.error_code, frame=f)
            elif isinstance(f, RstStreamFrame) and f.stream_id == stream_id:
                yield Event('rst', f.error_code, stream_id, f)
            elif (isinstance(f, HeadersFrame) and f.stream_id == stream_id
                  and getattr(f, 'final_response', False)):
                yield Event('response', self.streams[stream_id].status, stream_id, f)
            elif isinstance(f, PingFrame) and 'ACK' in f.flags and f.opaque_data == token:
                deadline = min(deadline, time.monotonic() + PROBE_GRACE)
                yield Event('ping')

    @staticmethod
    def _no_reaction(want, answered):
        if answered:
            return f'no {want}: the server carried on (it answered a PING sent afterwards)'
        return f'timeout waiting for {want}'

    def expect_goaway(self, code, allow_close=False, probe=True):
        """Connection error `code`: a GOAWAY carrying it."""
        want = f'GOAWAY({error_name(code)})'
        answered = False
        try:
            for ev in self.events(probe=probe):
                if ev.kind == 'goaway':
                    if ev.code == code:
                        return
                    fail(f'expected {want}, got {ev}')
                if ev.kind == 'closed':
                    if allow_close:
                        self.note('closed without GOAWAY')
                        return
                    fail(f'expected {want}, got {ev}')
                if ev.kind == 'ping':
                    answered = True
        except Timeout:
            fail(self._no_reaction(want, answered))

    def expect_stream_error(self, stream_id, codes, accept_400=False, probe=True):
        """Stream error: RST_STREAM on `stream_id` with one of `codes`, or a
        connection error with one of them.  With accept_400, a 400 response
        is accepted too and any other final response fails the test.
        Returns the event that satisfied the expectation."""
        codes = (codes,) if isinstance(codes, int) else tuple(codes)
        want = ' or '.join(f'RST_STREAM({error_name(c)})' for c in codes) + f' on stream {stream_id}'
        if accept_400:
            want += ' or a 400 response'
        answered = False
        try:
            for ev in self.events(stream_id, probe):
                if ev.kind in ('rst', 'goaway'):
                    if ev.code in codes:
                        if ev.kind == 'goaway':
                            self.note(f'connection error {error_name(ev.code)}')
                        return ev
                    fail(f'expected {want}, got {ev}')
                if ev.kind == 'response' and accept_400:
                    if ev.code == 400:
                        self.note('answered 400')
                        return ev
                    fail(f'expected {want}, got {ev}')
                if ev.kind == 'closed':
                    fail(f'expected {want}, got {ev}')
                if ev.kind == 'ping':
                    answered = True
        except Timeout:
            fail(self._no_reaction(want, answered))

    def expect_malformed(self, stream_id):
        """A malformed request (RFC 9113 section 8.1.1)."""
        return self.expect_stream_error(stream_id, PROTOCOL_ERROR, accept_400=True)

    def expect_stream_closed(self, stream_id, may_ignore):
        """A frame on a stream the server can no longer receive on: a stream
        or connection error STREAM_CLOSED.  If `may_ignore()` is true once the
        server has answered a later PING, ignoring the frame is accepted."""
        want = 'RST_STREAM(STREAM_CLOSED) or GOAWAY(STREAM_CLOSED)'
        answered = False
        try:
            for ev in self.events(stream_id):
                if ev.kind in ('rst', 'goaway'):
                    if ev.code == STREAM_CLOSED:
                        self.note(f'{FRAME_NAMES[ev.frame.type]}(STREAM_CLOSED)')
                        return
                    fail(f'expected {want}, got {ev}')
                if ev.kind == 'closed':
                    fail(f'expected {want}, got {ev}')
                if ev.kind == 'ping':
                    answered = True
        except Timeout:
            if answered and may_ignore():
                self.note('ignored')
                return
            fail(self._no_reaction(want, answered))

    def expect_ping_ack(self, payload):
        deadline = self.deadline()
        while True:
            try:
                f = self.read_frame(deadline)
            except Timeout:
                fail('timeout waiting for the PING ACK')
            if f is None or isinstance(f, GoAwayFrame):
                fail(f"got {describe(f) if f else 'a connection close'} instead of a PING ACK")
            if isinstance(f, PingFrame) and 'ACK' in f.flags:
                if f.opaque_data == payload:
                    return
                fail(f'PING ACK carries {f.opaque_data.hex()}, expected {payload.hex()}')

    def ping(self):
        """Round trip proving the server is still processing frames."""
        payload = os.urandom(8)
        self.send(ping_frame(payload))
        self.expect_ping_ack(payload)

    def _wait_stream(self, stream_id, done, what):
        st = self.streams[stream_id]
        deadline = self.deadline()
        while not done(st):
            if st.reset is not None:
                fail(f'stream {stream_id} was reset with {error_name(st.reset)}')
            if self.goaway is not None and (self.goaway.error_code != NO_ERROR or
                                            self.goaway.last_stream_id < stream_id):
                fail(f'got {describe(self.goaway)} while waiting for {what}')
            try:
                f = self.read_frame(deadline)
            except Timeout:
                progress = f' (got :status {st.status}, {len(st.body)} body octets)' if st.status else ''
                fail(f'timeout waiting for {what}{progress}')
            if f is None and not done(st):
                fail(f'connection closed while waiting for {what}')
        return st

    def expect_response(self, stream_id, status=None):
        """Waits for the complete response on `stream_id`."""
        st = self._wait_stream(stream_id, lambda s: s.ended,
                               f'the response on stream {stream_id}')
        if st.status is None:
            fail(f'stream {stream_id} ended without a final response')
        if status is not None and st.status != status:
            fail(f'expected :status {status} on stream {stream_id}, got {st.status}')
        return st

    def wait_response_headers(self, stream_id):
        return self._wait_stream(stream_id, lambda s: s.status is not None,
                                 f'the response HEADERS on stream {stream_id}')

    def wait_data(self, stream_id, octets):
        """Waits until `octets` flow-controlled octets arrived (or the end)."""
        return self._wait_stream(stream_id, lambda s: s.received >= octets or s.ended,
                                 f'{octets} DATA octets on stream {stream_id}')

    # -- floods -------------------------------------------------------------

    def flood(self, frames, read_while_sending=True):
        """Writes the byte strings of `frames` as fast as the server takes
        them, for at most FLOOD_SECONDS, until the server sends GOAWAY or
        closes.  The socket is non-blocking and served by a select() loop that
        also reads, so a server that stops reading cannot wedge the test (and
        TLS needs no second thread on the same connection).  With
        read_while_sending false nothing is read until the flood is over, like
        a client that never reads its replies."""
        result = FloodResult()
        log, self.log = self.log, None      # no per-frame logging
        self.auto_respond = False           # never block on sending a reply
        frames = iter(frames)
        out = bytearray()                   # generated, not yet written
        ends = collections.deque()          # where each unit ends in the output
        generated = written = 0
        chunk = b''                         # being written; TLS retries need the same bytes
        send_failed = False
        now = time.monotonic()
        stop, last_progress = now + FLOOD_SECONDS, now
        self.sock.setblocking(False)
        try:
            while now < stop and self.goaway is None and not self.eof:
                while len(out) < 1 << 18 and (unit := next(frames, None)) is not None:
                    out += unit
                    generated += len(unit)
                    ends.append(generated)
                if not out:
                    break                   # everything was written
                readers = [self.sock] if read_while_sending else []
                readable, writable, _ = select.select(readers, [self.sock], [], 0.05)
                if readable:
                    self._flood_read()
                n = 0
                if writable:
                    chunk = chunk or bytes(out[:16384])
                    try:
                        n = self.sock.send(chunk)
                    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        pass
                    except OSError:
                        send_failed = True  # closed by the server
                        break
                    del out[:n]
                    chunk = chunk[n:]
                    written += n
                    while ends and ends[0] <= written:
                        ends.popleft()
                        result.sent += 1
                now = time.monotonic()
                if n:
                    last_progress = now
                elif now - last_progress > FLOOD_STALL:
                    result.stalled = True
                    break
            # Sending is over: give the server a moment to end the connection.
            self.sock.setblocking(True)
            deadline = self.deadline(FLOOD_GRACE)
            try:
                while self.goaway is None and self._read(deadline) is not None:
                    pass
            except Timeout:
                pass
        finally:
            self.log = log
            self.auto_respond = True
        result.goaway = self.goaway
        result.closed = self.eof or send_failed
        return result

    def _flood_read(self):
        """Reads and processes whatever the non-blocking socket has."""
        while not self.eof:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError:
                data = b''
            if not data:
                self.eof = True
            self.buf += data
            while (f := self._take_frame()) is not None:
                self._process(f)


# --------------------------------------------------------------------------
# Test registry and runner

class Test:
    def __init__(self, test_id, title, func, tags, budget):
        self.id, self.title, self.func, self.tags, self.budget = test_id, title, func, tags, budget

    def matches(self, text):
        text = text.lower()
        return any(text in s.lower() for s in (self.id, self.title) + self.tags)


TESTS = []


def test(test_id, title, tags=(), budget=None):
    """Registers a test function taking a Context.  `budget` is the hard
    limit in seconds for the whole test, as a function of --timeout."""
    def register(func):
        TESTS.append(Test(test_id, title, func, tuple(tags), budget))
        return func
    return register


class Context:
    """What a test gets: connections, notes and a way to skip."""

    def __init__(self, cfg, log):
        self.cfg = cfg
        self.log = log
        self.notes = []
        self.connections = []

    def connect(self, settings=None, handshake=True, rcvbuf=None):
        conn = Connection(self.cfg, self.notes, self.log, rcvbuf)
        self.connections.append(conn)
        if handshake:
            conn.handshake(settings)
        return conn

    def note(self, text):
        self.notes.append(text)

    def skip(self, reason):
        raise TestSkipped(reason)

    def close_all(self):
        for conn in self.connections:
            conn.close()


def default_budget(timeout):
    return 6 * timeout + 3


def flood_budget(timeout):
    return FLOOD_SECONDS + FLOOD_STALL + FLOOD_GRACE + 3 * timeout + 3


def run_test(t, cfg, log):
    """Runs one test in a thread of its own; returns (verdict, detail)."""
    ctx = Context(cfg, log)
    outcome = []

    def body():
        try:
            t.func(ctx)
            outcome.append(('PASS', ''))
        except TestFailure as e:
            outcome.append(('FAIL', str(e)))
        except TestSkipped as e:
            outcome.append(('SKIP', str(e)))
        except Exception as e:      # a bug in the suite, or something unforeseen
            if log:
                log(traceback.format_exc())
            outcome.append(('FAIL', f'internal error: {type(e).__name__}: {e}'))
        finally:
            ctx.close_all()

    budget = (t.budget or default_budget)(cfg.timeout)
    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    worker.join(budget)
    if not outcome:
        ctx.close_all()
        return 'FAIL', f'timeout: the test did not finish within {budget:.0f}s'
    verdict, detail = outcome[0]
    notes = '; '.join(dict.fromkeys(ctx.notes))
    if notes and verdict == 'PASS':
        detail = notes
    elif notes:
        detail = f'{detail} [{notes}]'
    return verdict, detail


# --------------------------------------------------------------------------
# 3.4  HTTP/2 connection preface

@test('3.4/1', "the server's first frame is SETTINGS")
def preface_server_settings(ctx):
    conn = ctx.connect()        # the handshake checks the first frame
    conn.ping()


@test('3.4/2', 'invalid connection preface: connection error PROTOCOL_ERROR (or close)')
def preface_invalid(ctx):
    conn = ctx.connect(handshake=False)
    conn.send(b'PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n' + settings_frame())
    conn.expect_goaway(PROTOCOL_ERROR, allow_close=True, probe=False)


@test('3.4/3', 'preface not followed by SETTINGS: connection error PROTOCOL_ERROR (or close)')
def preface_without_settings(ctx):
    conn = ctx.connect(handshake=False)
    conn.send(PREFACE + ping_frame(b'preface!'))
    conn.expect_goaway(PROTOCOL_ERROR, allow_close=True, probe=False)


# --------------------------------------------------------------------------
# 4.1  Frame format

@test('4.1/1', 'a frame of unknown type is ignored')
def unknown_frame_type(ctx):
    conn = ctx.connect()
    conn.send(frame(UNKNOWN_FRAME_TYPE, 0xff, 0, b'unknown frame'))
    conn.ping()


@test('4.1/2', 'undefined flags on PING are ignored')
def ping_undefined_flags(ctx):
    conn = ctx.connect()
    conn.send(frame(PING, 0xfe, 0, b'flags!!!'))
    conn.expect_ping_ack(b'flags!!!')


@test('4.1/3', 'undefined flags on HEADERS are ignored')
def headers_undefined_flags(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    block = conn.encode(conn.request_fields())
    conn.send(frame(HEADERS, END_STREAM | END_HEADERS | 0x02 | 0x10 | 0x40 | 0x80, sid, block))
    conn.expect_response(sid, 200)


@test('4.1/4', 'the reserved bit of the stream identifier is ignored (PING)')
def ping_reserved_bit(ctx):
    conn = ctx.connect()
    conn.send(frame(PING, 0, 0, b'reserved', reserved_bit=True))
    conn.expect_ping_ack(b'reserved')


@test('4.1/5', 'the reserved bit of the stream identifier is ignored (HEADERS)')
def headers_reserved_bit(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    block = conn.encode(conn.request_fields())
    conn.send(frame(HEADERS, END_STREAM | END_HEADERS, sid, block, reserved_bit=True))
    conn.expect_response(sid, 200)


# --------------------------------------------------------------------------
# 4.2  Frame size

@test('4.2/1', 'DATA of exactly SETTINGS_MAX_FRAME_SIZE octets is accepted')
def data_max_frame_size(ctx):
    conn = ctx.connect()
    size = conn.max_frame_size
    sid = conn.request('POST', extra=[('content-length', str(size))], end_stream=False)
    if min(conn.conn_send_window, conn.stream_send_window(sid)) < size:
        ctx.skip('the server\'s flow-control window is smaller than its max frame size')
    conn.send_data(sid, b'x' * size, end_stream=True)
    ctx.note(f':status {conn.expect_response(sid).status}')


@test('4.2/2', 'DATA larger than SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR')
def data_too_large(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', end_stream=False)
    conn.send(frame(DATA, END_STREAM, sid, b'x' * (conn.max_frame_size + 1)))
    conn.expect_stream_error(sid, FRAME_SIZE_ERROR)


@test('4.2/3', 'HEADERS larger than SETTINGS_MAX_FRAME_SIZE: connection error FRAME_SIZE_ERROR')
def headers_too_large(ctx):
    conn = ctx.connect()
    fields = conn.request_fields(extra=[('x-large', 'a' * conn.max_frame_size)])
    conn.send_headers(conn.new_stream(), block=conn.encode(fields, huffman=False))
    conn.expect_goaway(FRAME_SIZE_ERROR)


# --------------------------------------------------------------------------
# 4.3  Field section compression and decompression

def split_block(conn, fields=None):
    block = conn.encode(fields or conn.request_fields())
    return block[:len(block) // 2], block[len(block) // 2:]


@test('4.3/1', 'undecodable header block: connection error COMPRESSION_ERROR')
def invalid_header_block(ctx):
    conn = ctx.connect()
    # A literal field whose 10-octet name is cut short after 3 octets.
    conn.send_headers(conn.new_stream(), block=b'\x40\x0afoo')
    conn.expect_goaway(COMPRESSION_ERROR)


@test('4.3/2', 'PRIORITY inside a header block: connection error PROTOCOL_ERROR')
def priority_inside_header_block(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    head, tail = split_block(conn)
    conn.send(frame(HEADERS, END_STREAM, sid, head) +
              priority_frame(sid, 0) +
              frame(CONTINUATION, END_HEADERS, sid, tail))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('4.3/3', 'HEADERS of another stream inside a header block: connection error PROTOCOL_ERROR')
def headers_inside_header_block(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    head, tail = split_block(conn)
    other = frame(HEADERS, END_STREAM | END_HEADERS, conn.new_stream(),
                  conn.encode(conn.request_fields()))
    conn.send(frame(HEADERS, END_STREAM, sid, head) + other +
              frame(CONTINUATION, END_HEADERS, sid, tail))
    conn.expect_goaway(PROTOCOL_ERROR)


# --------------------------------------------------------------------------
# 5.1  Stream states

@test('5.1/1', 'idle stream: DATA: connection error PROTOCOL_ERROR')
def idle_data(ctx):
    conn = ctx.connect()
    conn.send(frame(DATA, END_STREAM, conn.new_stream(), b'test'))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('5.1/2', 'idle stream: RST_STREAM: connection error PROTOCOL_ERROR')
def idle_rst_stream(ctx):
    conn = ctx.connect()
    conn.send(rst_stream_frame(conn.new_stream(), CANCEL))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('5.1/3', 'idle stream: WINDOW_UPDATE: connection error PROTOCOL_ERROR')
def idle_window_update(ctx):
    conn = ctx.connect()
    conn.send(window_update_frame(conn.new_stream(), 100))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('5.1/4', 'idle stream: CONTINUATION: connection error PROTOCOL_ERROR')
def idle_continuation(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    conn.send(frame(CONTINUATION, END_HEADERS, sid, conn.encode(conn.request_fields())))
    conn.expect_goaway(PROTOCOL_ERROR)


def half_closed_remote_stream(ctx):
    """A GET whose response cannot complete: our stream window is 0, so the
    stream stays half-closed (remote) on the server."""
    conn = ctx.connect({SETTINGS_INITIAL_WINDOW_SIZE: 0})
    return conn, conn.get()


@test('5.1/5', 'half-closed (remote) stream: DATA: STREAM_CLOSED')
def half_closed_data(ctx):
    conn, sid = half_closed_remote_stream(ctx)
    conn.send(frame(DATA, 0, sid, b'test'))
    conn.expect_stream_closed(sid, may_ignore=lambda: conn.streams[sid].ended)


@test('5.1/6', 'half-closed (remote) stream: HEADERS: STREAM_CLOSED')
def half_closed_headers(ctx):
    conn, sid = half_closed_remote_stream(ctx)
    conn.send_headers(sid, [('x-extra', 'value')], end_stream=True)
    conn.expect_stream_closed(sid, may_ignore=lambda: conn.streams[sid].ended)


@test('5.1/7', 'stream reset by the client: DATA is ignored or gets STREAM_CLOSED')
def reset_stream_data(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', end_stream=False)
    conn.send(rst_stream_frame(sid, CANCEL) + frame(DATA, 0, sid, b'test'))
    conn.expect_stream_closed(sid, may_ignore=lambda: True)


@test('5.1/8', 'stream reset by the client: HEADERS is ignored or gets STREAM_CLOSED')
def reset_stream_headers(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', end_stream=False)
    conn.send(rst_stream_frame(sid, CANCEL))
    conn.send_headers(sid, [('x-extra', 'value')], end_stream=True)
    conn.expect_stream_closed(sid, may_ignore=lambda: True)


@test('5.1/9', 'closed stream: DATA is ignored or gets STREAM_CLOSED')
def closed_stream_data(ctx):
    conn = ctx.connect()
    sid = conn.get()
    conn.expect_response(sid)
    conn.send(frame(DATA, END_STREAM, sid, b'test'))
    conn.expect_stream_closed(sid, may_ignore=lambda: True)


# --------------------------------------------------------------------------
# 5.1.1  Stream identifiers

@test('5.1.1/1', 'even stream identifier from the client: connection error PROTOCOL_ERROR')
def even_stream_id(ctx):
    conn = ctx.connect()
    conn.send_headers(2, conn.request_fields())
    conn.expect_goaway(PROTOCOL_ERROR)


@test('5.1.1/2', 'stream identifier lower than a previous one: connection error PROTOCOL_ERROR')
def decreasing_stream_id(ctx):
    conn = ctx.connect()
    conn.send_headers(5, conn.request_fields())
    conn.send_headers(3, conn.request_fields())
    conn.expect_goaway(PROTOCOL_ERROR)


# --------------------------------------------------------------------------
# 5.1.2  Stream concurrency

@test('5.1.2/1', 'streams beyond SETTINGS_MAX_CONCURRENT_STREAMS are refused')
def concurrency_limit(ctx):
    conn = ctx.connect()
    limit = conn.server_settings.get(SETTINGS_MAX_CONCURRENT_STREAMS)
    if limit is None:
        ctx.skip('the server advertises no SETTINGS_MAX_CONCURRENT_STREAMS (unlimited)')
    if limit > 1000:
        ctx.skip(f'SETTINGS_MAX_CONCURRENT_STREAMS is {limit}, too many to open')
    fields = conn.request_fields('POST')
    streams = [conn.new_stream() for _ in range(limit + 1)]
    # POSTs without END_STREAM stay open however fast the server answers.
    conn.send(b''.join(frame(HEADERS, END_HEADERS, sid, conn.encode(fields)) for sid in streams))
    ev = conn.expect_stream_error(streams[-1], (REFUSED_STREAM, PROTOCOL_ERROR))
    if ev.kind == 'rst':
        ctx.note(f'stream {limit + 1} of {limit} allowed got RST_STREAM({error_name(ev.code)})')


# --------------------------------------------------------------------------
# 5.3.1  Stream dependencies

@test('5.3.1/1', 'HEADERS depending on its own stream: stream error PROTOCOL_ERROR')
def headers_self_dependency(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    conn.send_headers(sid, conn.request_fields(), priority=(sid, 16, False))
    conn.expect_stream_error(sid, PROTOCOL_ERROR)


@test('5.3.1/2', 'PRIORITY depending on its own stream: stream error PROTOCOL_ERROR')
def priority_self_dependency(ctx):
    conn, sid = half_closed_remote_stream(ctx)
    conn.send(priority_frame(sid, sid))
    conn.expect_stream_error(sid, PROTOCOL_ERROR)


# --------------------------------------------------------------------------
# 5.5  Extending HTTP/2

@test('5.5/1', 'unknown extension frame inside a header block: connection error PROTOCOL_ERROR')
def extension_inside_header_block(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    head, tail = split_block(conn)
    conn.send(frame(HEADERS, END_STREAM, sid, head) +
              frame(UNKNOWN_FRAME_TYPE, 0, sid, b'extension') +
              frame(CONTINUATION, END_HEADERS, sid, tail))
    conn.expect_goaway(PROTOCOL_ERROR)


# --------------------------------------------------------------------------
# 6.1  DATA

@test('6.1/1', 'DATA on stream 0: connection error PROTOCOL_ERROR')
def data_stream_zero(ctx):
    conn = ctx.connect()
    conn.send(frame(DATA, END_STREAM, 0, b'test'))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.1/2', 'DATA whose padding is not shorter than the payload: connection error PROTOCOL_ERROR')
def data_bad_padding(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', end_stream=False)
    # Pad Length 5 in a 5-octet payload.
    conn.send(frame(DATA, PADDED | END_STREAM, sid, bytes([5]) + b'test'))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.1/3', 'DATA with valid padding is accepted')
def data_padding(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', extra=[('content-length', '4')], end_stream=False)
    conn.send(frame(DATA, PADDED | END_STREAM, sid, bytes([8]) + b'test' + bytes(8)))
    ctx.note(f':status {conn.expect_response(sid).status}')


# --------------------------------------------------------------------------
# 6.2  HEADERS

@test('6.2/1', 'HEADERS on stream 0: connection error PROTOCOL_ERROR')
def headers_stream_zero(ctx):
    conn = ctx.connect()
    conn.send_headers(0, conn.request_fields())
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.2/2', 'HEADERS whose padding is not shorter than the payload: connection error PROTOCOL_ERROR')
def headers_bad_padding(ctx):
    conn = ctx.connect()
    block = conn.encode(conn.request_fields())
    payload = bytes([len(block) + 1]) + block
    conn.send(frame(HEADERS, PADDED | END_HEADERS | END_STREAM, conn.new_stream(), payload))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.2/3', 'HEADERS with padding and priority is accepted')
def headers_padding_priority(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    block = conn.encode(conn.request_fields())
    payload = bytes([10]) + priority_fields(0, 200) + block + bytes(10)
    conn.send(frame(HEADERS, PADDED | PRIORITY_FLAG | END_HEADERS | END_STREAM, sid, payload))
    conn.expect_response(sid, 200)


# --------------------------------------------------------------------------
# 6.3  PRIORITY

@test('6.3/1', 'PRIORITY on stream 0: connection error PROTOCOL_ERROR')
def priority_stream_zero(ctx):
    conn = ctx.connect()
    conn.send(priority_frame(0, 1))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.3/2', 'PRIORITY with a length other than 5: stream error FRAME_SIZE_ERROR')
def priority_bad_length(ctx):
    conn, sid = half_closed_remote_stream(ctx)
    conn.send(frame(PRIORITY, 0, sid, priority_fields(0)[:4]))
    conn.expect_stream_error(sid, FRAME_SIZE_ERROR)


# --------------------------------------------------------------------------
# 6.4  RST_STREAM

@test('6.4/1', 'RST_STREAM on stream 0: connection error PROTOCOL_ERROR')
def rst_stream_zero(ctx):
    conn = ctx.connect()
    conn.send(rst_stream_frame(0, CANCEL))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.4/2', 'RST_STREAM with a length other than 4: connection error FRAME_SIZE_ERROR')
def rst_stream_bad_length(ctx):
    conn, sid = half_closed_remote_stream(ctx)
    conn.send(frame(RST_STREAM, 0, sid, b'\0\0\0'))
    conn.expect_goaway(FRAME_SIZE_ERROR)


# --------------------------------------------------------------------------
# 6.5  SETTINGS

@test('6.5/1', 'SETTINGS ACK with a payload: connection error FRAME_SIZE_ERROR')
def settings_ack_with_payload(ctx):
    conn = ctx.connect()
    conn.send(frame(SETTINGS, ACK, 0, struct.pack('>HI', SETTINGS_ENABLE_PUSH, 0)))
    conn.expect_goaway(FRAME_SIZE_ERROR)


@test('6.5/2', 'SETTINGS on a stream other than 0: connection error PROTOCOL_ERROR')
def settings_on_stream(ctx):
    conn = ctx.connect()
    conn.send(frame(SETTINGS, 0, 1, struct.pack('>HI', SETTINGS_ENABLE_PUSH, 0)))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.5/3', 'SETTINGS with a length not a multiple of 6: connection error FRAME_SIZE_ERROR')
def settings_bad_length(ctx):
    conn = ctx.connect()
    conn.send(frame(SETTINGS, 0, 0, struct.pack('>HI', SETTINGS_ENABLE_PUSH, 0)[:5]))
    conn.expect_goaway(FRAME_SIZE_ERROR)


@test('6.5.2/1', 'SETTINGS_ENABLE_PUSH=2: connection error PROTOCOL_ERROR')
def settings_enable_push_invalid(ctx):
    conn = ctx.connect()
    conn.send(settings_frame({SETTINGS_ENABLE_PUSH: 2}))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.5.2/2', 'SETTINGS_INITIAL_WINDOW_SIZE=2^31: connection error FLOW_CONTROL_ERROR')
def settings_window_too_large(ctx):
    conn = ctx.connect()
    conn.send(settings_frame({SETTINGS_INITIAL_WINDOW_SIZE: MAX_WINDOW + 1}))
    conn.expect_goaway(FLOW_CONTROL_ERROR)


@test('6.5.2/3', 'SETTINGS_MAX_FRAME_SIZE=16383: connection error PROTOCOL_ERROR')
def settings_frame_size_too_small(ctx):
    conn = ctx.connect()
    conn.send(settings_frame({SETTINGS_MAX_FRAME_SIZE: 16383}))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.5.2/4', 'SETTINGS_MAX_FRAME_SIZE=2^24: connection error PROTOCOL_ERROR')
def settings_frame_size_too_large(ctx):
    conn = ctx.connect()
    conn.send(settings_frame({SETTINGS_MAX_FRAME_SIZE: 2**24}))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.5.2/5', 'an unknown setting is ignored')
def settings_unknown(ctx):
    conn = ctx.connect()
    conn.update_settings({0xff: 1})
    conn.expect_response(conn.get(), 200)


@test('6.5.3/1', 'SETTINGS is acknowledged')
def settings_acknowledged(ctx):
    conn = ctx.connect()
    conn.update_settings({SETTINGS_MAX_CONCURRENT_STREAMS: 100, SETTINGS_HEADER_TABLE_SIZE: 4096})


# --------------------------------------------------------------------------
# 6.7  PING

@test('6.7/1', 'PING is answered with an ACK carrying the same payload')
def ping_answered(ctx):
    conn = ctx.connect()
    conn.send(ping_frame(b'\x00\x01\x02\x03\xfc\xfd\xfe\xff'))
    conn.expect_ping_ack(b'\x00\x01\x02\x03\xfc\xfd\xfe\xff')


@test('6.7/2', 'PING with the ACK flag is not answered')
def ping_ack_not_answered(ctx):
    conn = ctx.connect()
    conn.send(ping_frame(b'ack-ping', ack=True) + ping_frame(b'question'))
    conn.expect_ping_ack(b'question')


@test('6.7/3', 'PING on a stream other than 0: connection error PROTOCOL_ERROR')
def ping_on_stream(ctx):
    conn = ctx.connect()
    conn.send(frame(PING, 0, 1, b'stream 1'))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.7/4', 'PING with a length other than 8: connection error FRAME_SIZE_ERROR')
def ping_bad_length(ctx):
    conn = ctx.connect()
    conn.send(frame(PING, 0, 0, b'six!!!'))
    conn.expect_goaway(FRAME_SIZE_ERROR)


# --------------------------------------------------------------------------
# 6.8  GOAWAY

@test('6.8/1', 'GOAWAY on a stream other than 0: connection error PROTOCOL_ERROR')
def goaway_on_stream(ctx):
    conn = ctx.connect()
    conn.send(goaway_frame(0, NO_ERROR, stream_id=1))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.8/2', 'graceful shutdown: the server sends GOAWAY before closing')
def goaway_graceful(ctx):
    ctx.skip('needs the server to be shut down during the test')


# --------------------------------------------------------------------------
# 6.9  WINDOW_UPDATE and flow control

@test('6.9/1', 'WINDOW_UPDATE of 0 on the connection: connection error PROTOCOL_ERROR')
def window_update_zero_connection(ctx):
    conn = ctx.connect()
    conn.send(window_update_frame(0, 0))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.9/2', 'WINDOW_UPDATE of 0 on a stream: stream error PROTOCOL_ERROR')
def window_update_zero_stream(ctx):
    conn, sid = half_closed_remote_stream(ctx)
    conn.send(window_update_frame(sid, 0))
    conn.expect_stream_error(sid, PROTOCOL_ERROR)


@test('6.9/3', 'WINDOW_UPDATE with a length other than 4: connection error FRAME_SIZE_ERROR')
def window_update_bad_length(ctx):
    conn = ctx.connect()
    conn.send(frame(WINDOW_UPDATE, 0, 0, b'\0\0\x01'))
    conn.expect_goaway(FRAME_SIZE_ERROR)


def check_window(conn, sid, allowed):
    """Lets the server catch up, then checks it kept within `allowed`."""
    conn.ping()
    conn.settle()
    received = conn.streams[sid].received
    if received > allowed:
        fail(f'server sent {received} DATA octets on stream {sid} where the window allowed {allowed}')


def finish_response(conn, sid):
    """Opens the windows wide and waits for the rest of the response."""
    conn.auto_window_update = True
    conn.send(window_update_frame(0, 1 << 24) + window_update_frame(sid, 1 << 24))
    conn.expect_response(sid, 200)


@test('6.9.1/1', 'DATA stays within a stream window of 1 and resumes after WINDOW_UPDATE')
def flow_control_small_window(ctx):
    conn = ctx.connect({SETTINGS_INITIAL_WINDOW_SIZE: 1})
    conn.auto_window_update = False
    sid = conn.get()
    conn.wait_data(sid, 1)
    check_window(conn, sid, 1)
    finish_response(conn, sid)


@test('6.9.1/2', 'WINDOW_UPDATE overflowing the connection window: connection error FLOW_CONTROL_ERROR')
def window_overflow_connection(ctx):
    conn = ctx.connect()
    conn.send(window_update_frame(0, MAX_WINDOW) + window_update_frame(0, MAX_WINDOW))
    conn.expect_goaway(FLOW_CONTROL_ERROR)


@test('6.9.1/3', 'WINDOW_UPDATE overflowing a stream window: stream error FLOW_CONTROL_ERROR')
def window_overflow_stream(ctx):
    conn, sid = half_closed_remote_stream(ctx)
    conn.send(window_update_frame(sid, MAX_WINDOW) + window_update_frame(sid, MAX_WINDOW))
    conn.expect_stream_error(sid, FLOW_CONTROL_ERROR)


@test('6.9.2/1', 'a new SETTINGS_INITIAL_WINDOW_SIZE applies to open streams')
def initial_window_change(ctx):
    conn = ctx.connect({SETTINGS_INITIAL_WINDOW_SIZE: 0})
    conn.auto_window_update = False
    sid = conn.get()
    conn.wait_response_headers(sid)
    check_window(conn, sid, 0)
    conn.update_settings({SETTINGS_INITIAL_WINDOW_SIZE: 1})
    conn.wait_data(sid, 1)
    check_window(conn, sid, 1)
    finish_response(conn, sid)


@test('6.9.2/2', 'SETTINGS_INITIAL_WINDOW_SIZE can make a stream window negative')
def initial_window_negative(ctx):
    conn = ctx.connect({SETTINGS_INITIAL_WINDOW_SIZE: 2})
    conn.auto_window_update = False
    sid = conn.get()
    if conn.wait_data(sid, 2).ended:
        ctx.skip('the --path body is too short for this test')
    check_window(conn, sid, 2)
    conn.update_settings({SETTINGS_INITIAL_WINDOW_SIZE: 0})    # window now -2
    conn.send(window_update_frame(sid, 2))                      # back to 0
    check_window(conn, sid, 2)
    conn.send(window_update_frame(sid, 1))                      # 1
    conn.wait_data(sid, 3)
    check_window(conn, sid, 3)
    finish_response(conn, sid)


# --------------------------------------------------------------------------
# 6.10  CONTINUATION

@test('6.10/1', 'a header block split over several CONTINUATIONs is accepted')
def continuation_accepted(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    block = conn.encode(conn.request_fields(extra=[('x-padding', 'p' * 200)]), huffman=False)
    pieces = [block[i:i + 40] for i in range(0, len(block), 40)]
    frames = [frame(HEADERS, END_STREAM, sid, pieces[0])]
    frames += [frame(CONTINUATION, 0, sid, piece) for piece in pieces[1:-1]]
    frames.append(frame(CONTINUATION, END_HEADERS, sid, pieces[-1]))
    conn.send(b''.join(frames))
    conn.expect_response(sid, 200)


@test('6.10/2', 'CONTINUATION after HEADERS with END_HEADERS: connection error PROTOCOL_ERROR')
def continuation_after_end_headers(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    conn.send_headers(sid, conn.request_fields())
    conn.send(frame(CONTINUATION, END_HEADERS, sid, conn.encode([('x-extra', 'value')])))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.10/3', 'CONTINUATION on another stream: connection error PROTOCOL_ERROR')
def continuation_other_stream(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    head, tail = split_block(conn)
    conn.send(frame(HEADERS, END_STREAM, sid, head) +
              frame(CONTINUATION, END_HEADERS, sid + 2, tail))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.10/4', 'CONTINUATION on stream 0: connection error PROTOCOL_ERROR')
def continuation_stream_zero(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    head, tail = split_block(conn)
    conn.send(frame(HEADERS, END_STREAM, sid, head) +
              frame(CONTINUATION, END_HEADERS, 0, tail))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.10/5', 'DATA inside a header block: connection error PROTOCOL_ERROR')
def data_inside_header_block(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    head, tail = split_block(conn, conn.request_fields('POST'))
    conn.send(frame(HEADERS, 0, sid, head) + frame(DATA, 0, sid, b'test') +
              frame(CONTINUATION, END_HEADERS, sid, tail))
    conn.expect_goaway(PROTOCOL_ERROR)


@test('6.10/6', 'CONTINUATION after DATA: connection error PROTOCOL_ERROR')
def continuation_after_data(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', end_stream=False)
    conn.send(frame(DATA, 0, sid, b'test') +
              frame(CONTINUATION, END_HEADERS, sid, conn.encode([('x-extra', 'value')])))
    conn.expect_goaway(PROTOCOL_ERROR)


# --------------------------------------------------------------------------
# 8.1  HTTP message framing

@test('8.1/1', 'POST with a body and trailers is answered')
def post_with_trailers(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', extra=[('te', 'trailers')], end_stream=False)
    conn.send_body(sid, b'hello, trailers', end_stream=False)
    conn.send_headers(sid, [('x-trailer', 'value')], end_stream=True)
    ctx.note(f':status {conn.expect_response(sid).status}')


@test('8.1/2', 'second HEADERS without END_STREAM: malformed (PROTOCOL_ERROR or 400)')
def trailers_without_end_stream(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', end_stream=False)
    conn.send_headers(sid, [('x-trailer', 'value')], end_stream=False)
    conn.expect_malformed(sid)


@test('8.1/3', 'HEADERS after the trailers: STREAM_CLOSED')
def headers_after_trailers(ctx):
    conn = ctx.connect({SETTINGS_INITIAL_WINDOW_SIZE: 0})
    sid = conn.request('POST', end_stream=False)
    conn.send_body(sid, b'hello', end_stream=False)
    conn.send_headers(sid, [('x-trailer', 'value')], end_stream=True)
    conn.send_headers(sid, [('x-more', 'value')], end_stream=True)
    conn.expect_stream_closed(sid, may_ignore=lambda: conn.streams[sid].ended)


# --------------------------------------------------------------------------
# 8.1.1  Malformed messages

@test('8.1.1/1', 'content-length larger than the DATA sent: malformed (PROTOCOL_ERROR or 400)')
def content_length_too_large(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', extra=[('content-length', '10')], end_stream=False)
    conn.send_data(sid, b'test', end_stream=True)
    conn.expect_malformed(sid)


@test('8.1.1/2', 'content-length smaller than the DATA sent: malformed (PROTOCOL_ERROR or 400)')
def content_length_too_small(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', extra=[('content-length', '1')], end_stream=False)
    conn.send_data(sid, b'te')
    conn.send_data(sid, b'st', end_stream=True)
    conn.expect_malformed(sid)


# --------------------------------------------------------------------------
# 8.2  HTTP fields

CONNECTION_SPECIFIC = ('connection', 'keep-alive', 'proxy-connection',
                       'transfer-encoding', 'upgrade')


def check_response_fields(st):
    """RFC 9113 sections 8.2, 8.2.2 and 8.3 for a response we received."""
    names = [name for name, _ in st.headers]
    if names[0] != ':status':
        fail(f'response fields start with {names[0]}, not :status')
    for name in names[1:]:
        if name.startswith(':'):
            fail(f'response carries pseudo-header {name} besides :status')
        if name != name.lower():
            fail(f'response field name {name} is not lowercase')
        if name in CONNECTION_SPECIFIC:
            fail(f'response carries connection-specific field {name}')


@test('8.2/1', 'GET response: lowercase names, no connection-specific fields, :status only')
def response_fields_get(ctx):
    conn = ctx.connect()
    check_response_fields(conn.expect_response(conn.get(), 200))


@test('8.2/2', 'POST response: lowercase names, no connection-specific fields, :status only')
def response_fields_post(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', extra=[('content-length', '5')], end_stream=False)
    conn.send_body(sid, b'hello')
    check_response_fields(conn.expect_response(sid))


def malformed_request(ctx, fields):
    """Sends a request with fields(conn) and expects it to be rejected."""
    conn = ctx.connect()
    sid = conn.new_stream()
    conn.send_headers(sid, fields(conn))
    conn.expect_malformed(sid)


def request_plus(*fields):
    """The request pseudo-headers followed by `fields`."""
    return lambda conn: conn.request_fields(extra=fields)


def request_without(name):
    return lambda conn: [f for f in conn.request_fields() if f[0] != name]


def malformed_tests(cases):
    for test_id, title, fields in cases:
        test(test_id, f'{title}: malformed (PROTOCOL_ERROR or 400)')(
            functools.partial(malformed_request, fields=fields))


malformed_tests([
    ('8.2.1/1', 'uppercase field name', request_plus(('X-Upper', 'value'))),
    ('8.2.1/2', 'field name with a space', request_plus(('x bad', 'value'))),
    ('8.2.1/3', 'field name with a colon', request_plus(('x:bad', 'value'))),
    ('8.2.1/4', 'field value with CR LF', request_plus(('x-bad', 'a\r\nx-injected: 1'))),
    ('8.2.1/5', 'field value with NUL', request_plus(('x-bad', 'a\0b'))),
    ('8.2.1/6', 'field value with leading whitespace', request_plus(('x-bad', ' value'))),
    ('8.2.2/1', 'connection-specific field "connection"', request_plus(('connection', 'keep-alive'))),
    ('8.2.2/2', 'connection-specific field "keep-alive"', request_plus(('keep-alive', 'timeout=5'))),
    ('8.2.2/3', 'connection-specific field "proxy-connection"',
     request_plus(('proxy-connection', 'keep-alive'))),
    ('8.2.2/4', 'connection-specific field "transfer-encoding"',
     request_plus(('transfer-encoding', 'chunked'))),
    ('8.2.2/5', 'connection-specific field "upgrade"', request_plus(('upgrade', 'websocket'))),
    ('8.2.2/6', '"te" other than "trailers"', request_plus(('te', 'gzip'))),
])


@test('8.2.2/7', '"te: trailers" is accepted')
def te_trailers(ctx):
    conn = ctx.connect()
    conn.expect_response(conn.get(extra=[('te', 'trailers')]), 200)


@test('8.2.3/1', 'cookie split over two fields is accepted')
def cookie_crumbs(ctx):
    conn = ctx.connect()
    conn.expect_response(conn.get(extra=[('cookie', 'a=b'), ('cookie', 'c=d')]), 200)


# --------------------------------------------------------------------------
# 8.3  HTTP control data (pseudo-header fields)

malformed_tests([
    ('8.3/1', 'unknown pseudo-header', request_plus((':foo', 'bar'))),
    ('8.3/2', 'response pseudo-header :status in a request', request_plus((':status', '200'))),
    ('8.3/3', 'pseudo-header after a regular field',
     lambda conn: request_without(':path')(conn) + [('x-regular', 'value'), (':path', conn.cfg.path)]),
])


@test('8.3/4', 'pseudo-header in trailers: malformed (PROTOCOL_ERROR or 400)')
def pseudo_header_in_trailers(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', end_stream=False)
    conn.send_body(sid, b'hello', end_stream=False)
    conn.send_headers(sid, [(':path', '/'), ('x-trailer', 'value')], end_stream=True)
    conn.expect_malformed(sid)


malformed_tests([
    ('8.3.1/1', 'duplicate :method', request_plus((':method', 'GET'))),
    ('8.3.1/2', 'duplicate :path', request_plus((':path', '/'))),
    ('8.3.1/3', 'duplicate :scheme', request_plus((':scheme', 'https'))),
    ('8.3.1/4', 'missing :method', request_without(':method')),
    ('8.3.1/5', 'missing :scheme', request_without(':scheme')),
    ('8.3.1/6', 'missing :path', request_without(':path')),
    ('8.3.1/7', 'empty :path', lambda conn: conn.request_fields(path='')),
])


@test('8.3.1/8', 'no :authority but a host field is accepted')
def host_instead_of_authority(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    conn.send_headers(sid, request_without(':authority')(conn) + [('host', ctx.cfg.authority)])
    conn.expect_response(sid, 200)


# --------------------------------------------------------------------------
# RFC 8441  WebSocket over HTTP/2 (extended CONNECT)

def websocket_connect_fields(conn, path=None, drop=(), protocol='websocket', method='CONNECT'):
    fields = [(':method', method), (':protocol', protocol),
              (':scheme', 'https' if conn.cfg.tls else 'http'),
              (':authority', conn.cfg.authority),
              (':path', conn.cfg.path if path is None else path),
              ('sec-websocket-version', '13')]
    return [f for f in fields if f[0] not in drop]


@test('8441/1', 'SETTINGS_ENABLE_CONNECT_PROTOCOL is 1')
def connect_protocol_enabled(ctx):
    conn = ctx.connect()
    value = conn.server_settings.get(SETTINGS_ENABLE_CONNECT_PROTOCOL)
    if value != 1:
        fail(f'SETTINGS_ENABLE_CONNECT_PROTOCOL is {value}')


def open_websocket(conn, end_stream=False, **fields):
    """Sends an extended CONNECT (websocket_connect_fields with `fields`);
    returns its stream id."""
    sid = conn.new_stream()
    conn.send_headers(sid, websocket_connect_fields(conn, **fields), end_stream=end_stream)
    return sid


@test('8441/2', 'extended CONNECT to a member that does not switch: an error status, not 2xx')
def connect_protocol_not_switched(ctx):
    conn = ctx.connect()
    st = conn.wait_response_headers(open_websocket(conn))
    if 200 <= st.status < 300:
        fail(f':status {st.status} would open a tunnel that is not there')
    ctx.note(f':status {st.status}')


@test('8441/3', 'extended CONNECT without :path: malformed (PROTOCOL_ERROR or 400)')
def connect_protocol_without_path(ctx):
    conn = ctx.connect()
    conn.expect_malformed(open_websocket(conn, drop=(':path',)))


@test('8441/4', ':protocol with a method other than CONNECT: malformed (PROTOCOL_ERROR or 400)')
def protocol_without_connect(ctx):
    conn = ctx.connect()
    conn.expect_malformed(open_websocket(conn, end_stream=True, method='GET'))


@test('8441/5', 'extended CONNECT for an unknown protocol: refused (4xx or PROTOCOL_ERROR)')
def connect_protocol_unknown(ctx):
    conn = ctx.connect()
    conn.expect_malformed(open_websocket(conn, protocol='x-unknown'))


# --------------------------------------------------------------------------
# Ordinary exchanges

@test('basic/1', 'GET is answered 200 with a body')
def basic_get(ctx):
    conn = ctx.connect()
    if not conn.expect_response(conn.get(), 200).body:
        fail('the response has no body')


@test('basic/2', 'HEAD is answered without DATA payload')
def basic_head(ctx):
    conn = ctx.connect()
    st = conn.expect_response(conn.request('HEAD'), 200)
    if st.body:
        fail(f'HEAD response carries {len(st.body)} body octets')


@test('basic/3', 'POST of 100 KiB in 100 DATA frames is answered')
def basic_post(ctx):
    conn = ctx.connect()
    body = bytes(range(256)) * 400
    sid = conn.request('POST', extra=[('content-length', str(len(body))),
                                      ('content-type', 'application/octet-stream')],
                       end_stream=False)
    conn.send_body(sid, body, chunk=1024)
    ctx.note(f':status {conn.expect_response(sid).status}')


@test('basic/4', '10 concurrent streams on one connection are all answered')
def basic_concurrent(ctx):
    conn = ctx.connect()
    streams = [conn.get() for _ in range(10)]
    for sid in streams:
        conn.expect_response(sid, 200)


@test('basic/5', 'a field value of 8 KiB is accepted')
def basic_large_field(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    fields = conn.request_fields(extra=[('x-large', 'v' * 8192)])
    conn.send_headers(sid, block=conn.encode(fields, huffman=False))
    conn.expect_response(sid, 200)


# --------------------------------------------------------------------------
# HPACK (RFC 7541)

USER_AGENT_INDEX = 58      # static table entry for "user-agent"


def hpack_error(ctx, block):
    """A request whose header block ends with `block`; the server must fail
    the connection with COMPRESSION_ERROR."""
    conn = ctx.connect()
    block = block(conn) if callable(block) else block
    conn.send_headers(conn.new_stream(), block=block)
    conn.expect_goaway(COMPRESSION_ERROR)


@test('hpack/2.3.3/1', 'index beyond the static and dynamic tables: COMPRESSION_ERROR')
def hpack_bad_index(ctx):
    hpack_error(ctx, lambda conn: hpack_int(70, 7, 0x80) + conn.encode(conn.request_fields()))


@test('hpack/4.2/1', 'dynamic table size update after a field: COMPRESSION_ERROR')
def hpack_late_size_update(ctx):
    # :method GET (static index 2), then a size update, then the rest.
    hpack_error(ctx, lambda conn: b'\x82' + hpack_int(0, 5, 0x20) +
                conn.encode(conn.request_fields()[1:]))


@test('hpack/5.2/1', 'Huffman string containing EOS: COMPRESSION_ERROR')
def hpack_huffman_eos(ctx):
    hpack_error(ctx, lambda conn: conn.encode(conn.request_fields()) +
                hpack_literal(USER_AGENT_INDEX, b'\xff\xff\xff\xff', huffman=True))


@test('hpack/5.2/2', 'Huffman padding longer than 7 bits: COMPRESSION_ERROR')
def hpack_huffman_long_padding(ctx):
    # "a" (00011) followed by 11 one-bits.
    hpack_error(ctx, lambda conn: conn.encode(conn.request_fields()) +
                hpack_literal(USER_AGENT_INDEX, b'\x1f\xff', huffman=True))


@test('hpack/5.2/3', 'Huffman padding not made of EOS bits: COMPRESSION_ERROR')
def hpack_huffman_zero_padding(ctx):
    # "a" (00011) followed by 3 zero-bits.
    hpack_error(ctx, lambda conn: conn.encode(conn.request_fields()) +
                hpack_literal(USER_AGENT_INDEX, b'\x18', huffman=True))


@test('hpack/6.3/1', 'dynamic table size update above SETTINGS_HEADER_TABLE_SIZE: COMPRESSION_ERROR')
def hpack_size_update_too_large(ctx):
    def block(conn):
        limit = conn.server_settings.get(SETTINGS_HEADER_TABLE_SIZE, DEFAULT_HEADER_TABLE_SIZE)
        return hpack_int(limit + 1, 5, 0x20) + conn.encode(conn.request_fields())
    hpack_error(ctx, block)


@test('hpack/6.3/2', 'dynamic table size updates at the start of a block are accepted')
def hpack_size_update(ctx):
    conn = ctx.connect()
    conn.expect_response(conn.get(extra=[('x-indexed', 'one')]), 200)
    conn.encoder.header_table_size = 0          # evicts everything
    conn.expect_response(conn.get(extra=[('x-indexed', 'two')]), 200)
    conn.encoder.header_table_size = min(
        DEFAULT_HEADER_TABLE_SIZE,
        conn.server_settings.get(SETTINGS_HEADER_TABLE_SIZE, DEFAULT_HEADER_TABLE_SIZE))
    conn.expect_response(conn.get(extra=[('x-indexed', 'three')]), 200)
    conn.expect_response(conn.get(extra=[('x-indexed', 'three')]), 200)


@test('hpack/2.3.2/1', 'requests referring to dynamic table entries are decoded')
def hpack_dynamic_table(ctx):
    conn = ctx.connect()
    fields = conn.request_fields(extra=[('user-agent', 'h2-conformance'),
                                        ('x-dynamic', 'indexed-value-' * 8)])
    sizes = []
    for _ in range(3):
        block = conn.encode(fields)
        sizes.append(len(block))
        sid = conn.new_stream()
        conn.send_headers(sid, block=block)
        conn.expect_response(sid, 200)
    if not sizes[1] < sizes[0] // 4:
        fail(f'suite error: the encoder did not reuse the dynamic table ({sizes})')


# --------------------------------------------------------------------------
# Floods: the server has to end the connection before the flood is over.

def judge_flood(ctx, result, unit):
    """Passes when the server ended the connection; notes how and when.  The
    count is what had been written when the end was seen: an upper bound of
    what the server processed (for streams, GOAWAY's last stream tells)."""
    if result.goaway is not None:
        ctx.note(f'{describe(result.goaway)} after {result.sent} {unit} written')
    elif result.closed:
        ctx.note(f'closed without GOAWAY after {result.sent} {unit} written')
    elif result.stalled:
        fail(f'the server stopped reading after {result.sent} {unit} but kept the connection')
    else:
        fail(f'the server kept the connection through {result.sent} {unit}')


def flood_test(test_id, title):
    return test(test_id, title, tags=('flood',), budget=flood_budget)


@flood_test('flood-rapid-reset', '10,000 streams opened and cancelled at once')
def flood_rapid_reset(ctx):
    conn = ctx.connect()
    fields = conn.request_fields()

    def units():
        block = conn.encode(fields)     # the first block fills the dynamic table,
        for _ in range(10000):          # the following ones are all the same
            sid = conn.new_stream()
            yield (frame(HEADERS, END_STREAM | END_HEADERS, sid, block) +
                   rst_stream_frame(sid, CANCEL))
            if sid == 1:
                block = conn.encode(fields)
    judge_flood(ctx, conn.flood(units()), 'reset streams')


@flood_test('flood-continuation', 'HEADERS followed by 10,000 small CONTINUATIONs')
def flood_continuation(ctx):
    conn = ctx.connect()
    sid = conn.new_stream()
    head = frame(HEADERS, END_STREAM, sid, conn.encode(conn.request_fields()))
    # Each fragment is a complete literal field "fooo: bar", without indexing.
    continuation = frame(CONTINUATION, 0, sid, b'\x00\x04fooo\x03bar')
    frames = itertools.chain([head], itertools.repeat(continuation, 10000))
    judge_flood(ctx, conn.flood(frames), 'frames')


@flood_test('flood-ping', '100,000 PINGs without reading the ACKs')
def flood_ping(ctx):
    conn = ctx.connect(rcvbuf=4096)
    frames = itertools.repeat(ping_frame(b'flooding'), 100000)
    judge_flood(ctx, conn.flood(frames, read_while_sending=False), 'PINGs')


@flood_test('flood-settings', '100,000 empty SETTINGS without reading the ACKs')
def flood_settings(ctx):
    conn = ctx.connect(rcvbuf=4096)
    frames = itertools.repeat(settings_frame(), 100000)
    judge_flood(ctx, conn.flood(frames, read_while_sending=False), 'SETTINGS')


@flood_test('flood-empty-data', '10,000 empty DATA frames on an open POST')
def flood_empty_data(ctx):
    conn = ctx.connect()
    sid = conn.request('POST', end_stream=False)
    frames = itertools.repeat(frame(DATA, 0, sid, b''), 10000)
    judge_flood(ctx, conn.flood(frames), 'empty DATA frames')


@flood_test('flood-priority', '100,000 PRIORITY frames')
def flood_priority(ctx):
    conn = ctx.connect()
    frames = (priority_frame(2 * i + 1, 0) for i in range(100000))
    judge_flood(ctx, conn.flood(frames), 'PRIORITY frames')


@flood_test('flood-window-update', '5,000 WINDOW_UPDATEs of 1 are legitimate: GET still works')
def flood_window_update(ctx):
    conn = ctx.connect()
    conn.send(window_update_frame(0, 1) * 5000)
    conn.expect_response(conn.get(), 200)


# --------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int)
    parser.add_argument('--tls', action='store_true', help='TLS with ALPN h2 (certificate not verified)')
    parser.add_argument('--path', default='/', help='answers GET with 200 and a body (default /)')
    parser.add_argument('--authority', help='value of :authority (default host:port)')
    parser.add_argument('--timeout', type=float, default=3.0, help='seconds for each wait (default 3)')
    parser.add_argument('-k', dest='filter', help='run tests whose id, title or tag contains this')
    parser.add_argument('--list', action='store_true', help='list the tests and exit')
    parser.add_argument('-v', '--verbose', action='store_true', help='log frames to stderr')
    cfg = parser.parse_args()

    selected = [t for t in TESTS if not cfg.filter or t.matches(cfg.filter)]
    if cfg.list:
        for t in selected:
            tags = f"  [{', '.join(t.tags)}]" if t.tags else ''
            print(f'{t.id:20} {t.title}{tags}')
        return 0
    if cfg.port is None:
        parser.error('--port is required')
    if cfg.authority is None:
        host = f'[{cfg.host}]' if ':' in cfg.host else cfg.host
        cfg.authority = f'{host}:{cfg.port}'

    log_lock = threading.Lock()

    def log(line):
        with log_lock:
            print('    ' + line, file=sys.stderr, flush=True)

    counts = collections.Counter()
    started = time.monotonic()
    for t in selected:
        if cfg.verbose:
            log(f'--- {t.id} {t.title}')
        verdict, detail = run_test(t, cfg, log if cfg.verbose else None)
        counts[verdict] += 1
        print(f'{verdict} {t.id} {t.title}' + (f' -- {detail}' if detail else ''), flush=True)
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped"
          f' ({time.monotonic() - started:.1f}s)')
    return 1 if counts['FAIL'] else 0


if __name__ == '__main__':
    sys.exit(main())
