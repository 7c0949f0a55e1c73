//! A minimal HTTP/1.1 client: one keep-alive TCP connection, one request at a time, optionally
//! bound to a chosen loopback source address (the relay's allowlist looks at the TCP peer).
//!
//! It is deliberately small: a load generator that spends less CPU per request than the server
//! it measures leaves more of the machine to the server. It speaks just enough HTTP for the
//! answers our servers give (`Content-Length` or chunked bodies, `Connection: close`).

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Largest response head or body this client accepts; anything bigger is a protocol error here.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// A keep-alive connection to one server, reopened on the next request after the server closed it.
#[derive(Debug)]
pub struct Connection {
    /// Where requests go.
    target: SocketAddr,
    /// The local address to bind (e.g. 127.0.0.3 to look like an unlisted sender).
    source: Option<IpAddr>,
    /// The open stream; `None` after the server closed it or an error.
    stream: Option<TcpStream>,
    /// Bytes received and not yet consumed.
    buf: Vec<u8>,
    /// How many times a connection was (re)opened.
    pub opened: u64,
}

impl Connection {
    /// A connection that opens lazily on the first request.
    pub fn new(target: SocketAddr, source: Option<IpAddr>) -> Self {
        Self {
            target,
            source,
            stream: None,
            buf: Vec::with_capacity(8192),
            opened: 0,
        }
    }

    /// Opens the TCP connection now (so connect time is not part of the first request).
    pub async fn connect(&mut self) -> io::Result<()> {
        let socket = match self.target {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(ip) = self.source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(self.target).await?;
        stream.set_nodelay(true)?;
        self.stream = Some(stream);
        self.buf.clear();
        self.opened += 1;
        Ok(())
    }

    /// Sends one complete request (see [`post`], [`get`]) and reads its response. On any error the
    /// connection is dropped and the next call reconnects; the request is never resent.
    pub async fn send(&mut self, request: &[u8]) -> io::Result<Response> {
        if self.stream.is_none() {
            self.connect().await?;
        }
        let result = self.exchange(request).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream_mut()?.write_all(request).await?;
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            self.fill().await?;
        };
        let head = parse_head(&self.buf[..head_end])?;
        let mut pos = head_end + 4;
        let body = if head.chunked {
            self.read_chunked(&mut pos).await?
        } else {
            let len = head.content_length.unwrap_or(0);
            if len > MAX_RESPONSE_BYTES {
                return Err(invalid("response body too large"));
            }
            while self.buf.len() < pos + len {
                self.fill().await?;
            }
            let body = self.buf[pos..pos + len].to_vec();
            pos += len;
            body
        };
        self.buf.drain(..pos);
        if head.close {
            self.stream = None;
        }
        Ok(Response {
            status: head.status,
            body,
        })
    }

    async fn read_chunked(&mut self, pos: &mut usize) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf[*pos..], b"\r\n") {
                    break *pos + i;
                }
                self.fill().await?;
            };
            let line = std::str::from_utf8(&self.buf[*pos..line_end])
                .map_err(|_| invalid("chunk size is not text"))?;
            let hex = line.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(hex, 16).map_err(|_| invalid("chunk size is not hex"))?;
            *pos = line_end + 2;
            if body.len() + size > MAX_RESPONSE_BYTES {
                return Err(invalid("response body too large"));
            }
            // The chunk data and its CRLF; the last chunk (size 0) is followed by the final CRLF
            // (trailers are not supported: our servers send none).
            while self.buf.len() < *pos + size + 2 {
                self.fill().await?;
            }
            body.extend_from_slice(&self.buf[*pos..*pos + size]);
            *pos += size + 2;
            if size == 0 {
                return Ok(body);
            }
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.len() > MAX_RESPONSE_BYTES {
            return Err(invalid("response too large"));
        }
        self.buf.reserve(8192);
        let stream = self.stream.as_mut().ok_or_else(closed)?;
        let n = stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(closed());
        }
        Ok(())
    }

    fn stream_mut(&mut self) -> io::Result<&mut TcpStream> {
        self.stream.as_mut().ok_or_else(closed)
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed by the server",
    )
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// What the client needs from a response head.
struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
}

fn parse_head(head: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(head).map_err(|_| invalid("response head is not text"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut out = Head {
        status,
        content_length: None,
        chunked: false,
        close: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            out.content_length = Some(value.parse().map_err(|_| invalid("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            out.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            out.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A complete `POST` request with a JSON body.
pub fn post(target: SocketAddr, path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {target}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// A complete `GET` request, with a bearer token when given.
pub fn get(target: SocketAddr, path: &str, bearer: Option<&str>) -> Vec<u8> {
    let auth = bearer
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nhost: {target}\r\n{auth}\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(replies: Vec<&'static [u8]>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for reply in replies {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(reply).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn content_length_and_chunked_bodies_are_read_on_one_keep_alive_connection() {
        let addr = serve_once(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        ])
        .await;
        let mut conn = Connection::new(addr, None);
        let a = conn.send(&get(addr, "/", None)).await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));
        let b = conn.send(&post(addr, "/x", b"{}")).await.unwrap();
        assert_eq!((b.status, b.body.as_slice()), (403, &b"abcde"[..]));
        assert_eq!(conn.opened, 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closes_is_reopened_for_the_next_request() {
        let addr = serve_once(vec![
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        ])
        .await;
        let mut conn = Connection::new(addr, None);
        assert_eq!(conn.send(&get(addr, "/", None)).await.unwrap().status, 200);
        assert!(conn.stream.is_none());
    }
}
