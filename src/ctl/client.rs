//! A minimal blocking XML-RPC client for corralctl.
//!
//! Speaks HTTP/1.1 over `unix://` sockets and `http://` ports with optional
//! Basic auth, one connection per call (`Connection: close`), and returns
//! dxr [`Value`]s or the server's fault. Blocking on purpose: corralctl does
//! one thing at a time, and a blocking client needs no runtime.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use dxr::{FaultResponse, MethodCall, MethodResponse, Value};

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerUrl {
    /// `unix:///path/to/socket`.
    Unix(PathBuf),
    /// `http://host:port` (port defaults to 80).
    Http {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl ServerUrl {
    /// Parse `unix:///path` or `http://host[:port][/...]`, as supervisorctl's `serverurl`.
    pub fn parse(url: &str) -> Result<ServerUrl, ClientError> {
        if let Some(path) = url.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(ClientError::Url(url.to_string()));
            }
            return Ok(ServerUrl::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("http://") {
            let authority = rest.split('/').next().unwrap_or("");
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| ClientError::Url(url.to_string()))?),
                None => (authority, 80),
            };
            if host.is_empty() {
                return Err(ClientError::Url(url.to_string()));
            }
            return Ok(ServerUrl::Http { host: host.to_string(), port });
        }
        Err(ClientError::Url(url.to_string()))
    }
}

/// Why a call did not return a value.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an XML-RPC fault.
    #[error("<Fault {code}: '{text}'>")]
    Fault {
        /// `faultCode`.
        code: i32,
        /// `faultString`.
        text: String,
    },
    /// The server answered with a non-200 HTTP status (401: authentication required).
    #[error("HTTP status {0}")]
    Http(u16),
    /// Connecting, sending or receiving failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The answer was not valid HTTP or XML-RPC.
    #[error("invalid response: {0}")]
    Protocol(String),
    /// The server URL could not be parsed.
    #[error("invalid server URL: {0}")]
    Url(String),
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// An XML-RPC client for one server.
#[derive(Debug, Clone)]
pub struct Client {
    url: ServerUrl,
    auth: Option<(String, String)>,
    timeout: Option<Duration>,
}

impl Client {
    /// A client without credentials or timeout.
    pub fn new(url: ServerUrl) -> Client {
        Client { url, auth: None, timeout: None }
    }

    /// Send Basic auth with every call.
    pub fn with_auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Client {
        self.auth = Some((username.into(), password.into()));
        self
    }

    /// Give up on reads and writes after this long (`None`: wait forever, needed for `wait=true` starts).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Client {
        self.timeout = timeout;
        self
    }

    fn connect(&self) -> io::Result<Box<dyn Stream>> {
        self.connect_with(self.timeout)
    }

    fn connect_with(&self, timeout: Option<Duration>) -> io::Result<Box<dyn Stream>> {
        Ok(match &self.url {
            ServerUrl::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)?;
                Box::new(s)
            }
            ServerUrl::Http { host, port } => {
                let s = TcpStream::connect((host.as_str(), *port))?;
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)?;
                Box::new(s)
            }
        })
    }

    fn host_header(&self) -> String {
        match &self.url {
            ServerUrl::Unix(_) => "localhost".to_string(),
            ServerUrl::Http { host, port } => format!("{host}:{port}"),
        }
    }

    /// Call `method` with `params`; a fault comes back as [`ClientError::Fault`].
    pub fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        let body = MethodCall { name: Cow::Borrowed(method), params }
            .to_xml()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let body = format!("<?xml version='1.0'?>\n{body}");
        let mut head = format!(
            "POST /RPC2 HTTP/1.1\r\nHost: {}\r\nUser-Agent: corralctl\r\nContent-Type: text/xml\r\nAccept: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.host_header(),
            body.len()
        );
        if let Some((user, password)) = &self.auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            head.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = self.connect()?;
        let sent = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .and_then(|()| stream.flush());
        let mut raw = Vec::new();
        let read = stream.read_to_end(&mut raw);
        // A server may answer (401, 413) and close before reading everything we
        // send; its answer is more useful than the broken pipe.
        if raw.is_empty() {
            sent?;
            read?;
        }
        let (status, payload) = parse_http(&raw)?;
        if status != 200 {
            return Err(ClientError::Http(status));
        }
        let text = String::from_utf8(payload).map_err(|e| ClientError::Protocol(e.to_string()))?;
        decode_response(&text)
    }
}

impl Client {
    /// `GET path` and hand the body to `sink` as it arrives, for the endless
    /// `/logtail` and `/mainlogtail` streams.
    ///
    /// Reads wake at least every `tick`; `sink` is then called with an empty
    /// slice so the caller can notice Ctrl-C. The stream ends when `sink`
    /// returns `false` or the server closes; a non-200 answer is
    /// [`ClientError::Http`].
    pub fn stream_get(
        &self,
        path: &str,
        tick: Duration,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), ClientError> {
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept-Encoding: chunked\r\nAccept: */*\r\nUser-agent: corralctl\r\n",
            self.host_header()
        );
        if let Some((user, password)) = &self.auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            head.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = self.connect_with(Some(tick))?;
        stream.write_all(head.as_bytes())?;
        stream.flush()?;
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        // Headers first.
        let end = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            match read_some(&mut stream, &mut buf)? {
                Some(0) => return Err(ClientError::Protocol("connection closed before headers".into())),
                Some(n) => raw.extend_from_slice(&buf[..n]),
                None if !sink(&[]) => return Ok(()),
                None => {}
            }
        };
        let status = raw[..end]
            .split(|b| *b == b' ')
            .nth(1)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.trim().parse::<u16>().ok())
            .ok_or_else(|| ClientError::Protocol("no status code".into()))?;
        if status != 200 {
            return Err(ClientError::Http(status));
        }
        let head_text = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let chunked = head_text.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
        let mut decoder = if chunked { Body::Chunked(Dechunker::default()) } else { Body::Raw };
        let mut pending = raw[end + 4..].to_vec();
        loop {
            if !pending.is_empty() {
                let (data, finished) = decoder.feed(&pending)?;
                pending.clear();
                if !data.is_empty() && !sink(&data) {
                    return Ok(());
                }
                if finished {
                    return Ok(());
                }
            }
            match read_some(&mut stream, &mut buf)? {
                Some(0) => return Ok(()),
                Some(n) => pending.extend_from_slice(&buf[..n]),
                None if !sink(&[]) => return Ok(()),
                None => {}
            }
        }
    }
}

/// One read; `None` when the read timed out or was interrupted (the caller polls for Ctrl-C).
fn read_some(stream: &mut Box<dyn Stream>, buf: &mut [u8]) -> Result<Option<usize>, ClientError> {
    match stream.read(buf) {
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// How a streamed body is framed.
enum Body {
    Raw,
    Chunked(Dechunker),
}

impl Body {
    /// Decode what arrived; `true` once the last chunk was seen.
    fn feed(&mut self, data: &[u8]) -> Result<(Vec<u8>, bool), ClientError> {
        match self {
            Body::Raw => Ok((data.to_vec(), false)),
            Body::Chunked(d) => d.feed(data),
        }
    }
}

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Default)]
struct Dechunker {
    buf: Vec<u8>,
    /// Bytes left in the current chunk, plus whether its CRLF is still due.
    remaining: usize,
    in_chunk: bool,
    /// The last chunk was seen; anything after it (trailers) is ignored.
    done: bool,
}

impl Dechunker {
    fn feed(&mut self, data: &[u8]) -> Result<(Vec<u8>, bool), ClientError> {
        if self.done {
            return Ok((Vec::new(), true));
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.in_chunk {
                if self.remaining > 0 {
                    let take = self.remaining.min(self.buf.len());
                    out.extend(self.buf.drain(..take));
                    self.remaining -= take;
                    if self.remaining > 0 {
                        return Ok((out, false));
                    }
                }
                if self.buf.len() < 2 {
                    return Ok((out, false));
                }
                self.buf.drain(..2);
                self.in_chunk = false;
            }
            let Some(eol) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                return Ok((out, false));
            };
            let line = String::from_utf8_lossy(&self.buf[..eol]).into_owned();
            self.buf.drain(..eol + 2);
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| ClientError::Protocol(format!("bad chunk size {size_text:?}")))?;
            if size == 0 {
                self.done = true;
                return Ok((out, true));
            }
            self.remaining = size;
            self.in_chunk = true;
        }
    }
}

/// Decode a `<methodResponse>`: the value, or the fault it carries.
pub fn decode_response(text: &str) -> Result<Value, ClientError> {
    if let Ok(r) = MethodResponse::from_xml(text) {
        return Ok(r.value);
    }
    match FaultResponse::from_xml(text) {
        Ok(f) => Err(ClientError::Fault { code: f.fault.code(), text: f.fault.string().to_string() }),
        Err(e) => Err(ClientError::Protocol(e.to_string())),
    }
}

/// Split an HTTP/1.x response into status and body (Content-Length, chunked, or to EOF).
fn parse_http(raw: &[u8]) -> Result<(u16, Vec<u8>), ClientError> {
    let bad = |m: &str| ClientError::Protocol(m.to_string());
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("header is not text"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<usize>().ok();
            }
        }
    }
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else if let Some(n) = length {
        body.get(..n).ok_or_else(|| bad("body shorter than Content-Length"))?.to_vec()
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(ServerUrl::parse("unix:///tmp/s.sock").unwrap(), ServerUrl::Unix("/tmp/s.sock".into()));
        assert_eq!(
            ServerUrl::parse("http://127.0.0.1:9001").unwrap(),
            ServerUrl::Http { host: "127.0.0.1".into(), port: 9001 }
        );
        assert_eq!(
            ServerUrl::parse("http://localhost/RPC2").unwrap(),
            ServerUrl::Http { host: "localhost".into(), port: 80 }
        );
        assert!(ServerUrl::parse("ftp://x").is_err());
        assert!(ServerUrl::parse("unix://").is_err());
        assert!(ServerUrl::parse("http://:9").is_err());
    }

    #[test]
    fn http_parsing() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(parse_http(raw).unwrap(), (200, b"abc".to_vec()));
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_http(raw).unwrap(), (200, b"abcde".to_vec()));
        assert_eq!(parse_http(b"HTTP/1.0 401 Unauthorized\r\n\r\n").unwrap().0, 401);
        assert!(parse_http(b"garbage").is_err());
    }

    #[test]
    fn chunks_split_anywhere() {
        let body = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        for cut in 0..body.len() {
            let mut d = Dechunker::default();
            let (mut out, mut done) = d.feed(&body[..cut]).unwrap();
            let (rest, fin) = d.feed(&body[cut..]).unwrap();
            out.extend(rest);
            done |= fin;
            assert_eq!((out.as_slice(), done), (&b"abcde"[..], true), "cut at {cut}");
        }
    }

    #[test]
    fn responses() {
        let ok = "<?xml version='1.0'?>\n<methodResponse><params><param><value><string>3.0</string></value></param></params></methodResponse>";
        assert_eq!(decode_response(ok).unwrap(), Value::String("3.0".into()));
        let fault = "<?xml version='1.0'?>\n<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>10</int></value></member><member><name>faultString</name><value><string>BAD_NAME: x</string></value></member></struct></value></fault></methodResponse>";
        match decode_response(fault) {
            Err(ClientError::Fault { code, text }) => assert_eq!((code, text.as_str()), (10, "BAD_NAME: x")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
