//! A minimal RFC 6455 client, just what the loader needs: the upgrade request, masked frames
//! out, unmasked frames in, ping answers, close.
//!
//! Why not tungstenite: at hundreds of thousands of messages per second the loader's cost per
//! received frame decides whether it, rather than the server, sets the pace. Here a frame is
//! parsed in place from one shared per-thread read buffer and handed over as a slice: no
//! allocation, no copy, no UTF-8 check per message, and an idle connection holds no buffer
//! at all (only an incomplete frame is kept between reads).

use std::cell::RefCell;
use std::io;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::payload::find;

/// Bytes read per `read` call into the shared buffer.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Largest frame or message accepted; benchmark messages are a few hundred bytes.
pub(crate) const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Largest upgrade response accepted.
const MAX_RESPONSE_HEAD_BYTES: usize = 16 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

thread_local! {
    /// The read buffer every connection on this thread shares: reads never await between
    /// filling and parsing it, so one per worker thread is enough.
    static READ_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Why the WebSocket failed or ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The server did not switch protocols.
    #[error("upgrade refused: {0}")]
    Upgrade(String),
    /// The server broke the framing rules.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// The server sent a close frame.
    #[error("close {code} {reason}")]
    Closed { code: u16, reason: String },
    /// The TCP connection ended without a close frame.
    #[error("connection closed")]
    Eof,
}

/// Data frame kinds the caller may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataKind {
    Text,
    Binary,
}

/// An upgraded connection.
pub(crate) struct WireSocket {
    stream: TcpStream,
    /// The start of a frame whose rest has not arrived yet; usually empty.
    pending: Vec<u8>,
    /// A fragmented message being reassembled.
    fragments: Option<Vec<u8>>,
    /// Ping payloads to answer after the current read.
    pongs: Vec<Vec<u8>>,
    /// xorshift state for masking keys (clients must mask; the key need not be secret here).
    mask_state: u32,
}

impl WireSocket {
    /// Sends the upgrade request for `path` on `stream` and reads the `101` answer.
    ///
    /// # Errors
    /// [`WireError`] when the server refuses or the connection fails.
    pub(crate) async fn upgrade(
        mut stream: TcpStream,
        host: &str,
        path: &str,
        subprotocol: Option<&str>,
    ) -> Result<Self, WireError> {
        // The key only proves to the server that this is a WebSocket client; the RFC's
        // example nonce is as good as a random one for a load generator.
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        if let Some(subprotocol) = subprotocol {
            request.push_str(&format!("Sec-WebSocket-Protocol: {subprotocol}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;

        let mut head = Vec::with_capacity(512);
        let head_end = loop {
            stream.readable().await?;
            let mut chunk = [0u8; 1024];
            match stream.try_read(&mut chunk) {
                Ok(0) => return Err(WireError::Eof),
                Ok(read) => head.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Err(error.into()),
            }
            if let Some(end) = find(&head, b"\r\n\r\n") {
                break end + 4;
            }
            if head.len() > MAX_RESPONSE_HEAD_BYTES {
                return Err(WireError::Upgrade("response head too large".to_owned()));
            }
        };
        let status_line = head
            .split(|byte| *byte == b'\r')
            .next()
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .unwrap_or_default();
        if status_line.split_whitespace().nth(1) != Some("101") {
            return Err(WireError::Upgrade(status_line));
        }
        let seed = stream
            .local_addr()
            .map_or(0x9E37_79B9, |addr| u32::from(addr.port()) | 0x1000_0000);
        Ok(WireSocket {
            stream,
            pending: head[head_end..].to_vec(),
            fragments: None,
            pongs: Vec::new(),
            mask_state: seed,
        })
    }

    /// Waits for data, reads what is there and calls `on_message` for every complete data
    /// message (text or binary alike). Answers pings before returning.
    ///
    /// # Errors
    /// [`WireError::Closed`] when the server closed, [`WireError::Eof`] when the connection
    /// ended, others when it failed.
    pub(crate) async fn read(
        &mut self,
        mut on_message: impl FnMut(&[u8]),
    ) -> Result<(), WireError> {
        // Frames that arrived with the upgrade answer or were completed earlier go first.
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            let used = self.parse(&pending, &mut on_message)?;
            self.pending = pending;
            self.pending.drain(..used);
            if used > 0 {
                return self.answer_pings().await;
            }
        }
        loop {
            self.stream.readable().await?;
            let read =
                READ_BUFFER.with_borrow_mut(|buffer| self.read_ready(buffer, &mut on_message));
            if read? {
                return self.answer_pings().await;
            }
        }
    }

    /// One non-blocking read into the shared buffer, parsed at once; `false` when the socket
    /// had nothing after all.
    fn read_ready(
        &mut self,
        buffer: &mut Vec<u8>,
        on_message: &mut impl FnMut(&[u8]),
    ) -> Result<bool, WireError> {
        let kept = self.pending.len();
        if buffer.len() < kept + READ_CHUNK_BYTES {
            buffer.resize(kept + READ_CHUNK_BYTES, 0);
        }
        buffer[..kept].copy_from_slice(&self.pending);
        let read = match self.stream.try_read(&mut buffer[kept..]) {
            Ok(0) => return Err(WireError::Eof),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(error) => return Err(error.into()),
        };
        let filled = kept + read;
        let used = self.parse(&buffer[..filled], on_message)?;
        self.pending.clear();
        self.pending.extend_from_slice(&buffer[used..filled]);
        if self.pending.is_empty() && self.pending.capacity() > 4096 {
            self.pending = Vec::new();
        }
        Ok(true)
    }

    /// Handles every complete frame at the start of `data`; returns the bytes they took.
    fn parse(
        &mut self,
        data: &[u8],
        on_message: &mut impl FnMut(&[u8]),
    ) -> Result<usize, WireError> {
        let mut position = 0;
        while let Some(header) = FrameHeader::parse(&data[position..])? {
            let start = position + header.header_bytes;
            let Some(end) = start
                .checked_add(header.payload_bytes)
                .filter(|end| *end <= data.len())
            else {
                break;
            };
            let payload = &data[start..end];
            match header.opcode {
                OP_TEXT | OP_BINARY if self.fragments.is_some() => {
                    return Err(WireError::Protocol(
                        "data frame inside a fragmented message",
                    ));
                }
                OP_TEXT | OP_BINARY if header.fin => on_message(payload),
                OP_TEXT | OP_BINARY => self.fragments = Some(payload.to_vec()),
                OP_CONTINUATION => {
                    let fragments = self
                        .fragments
                        .as_mut()
                        .ok_or(WireError::Protocol("continuation without a first frame"))?;
                    fragments.extend_from_slice(payload);
                    if fragments.len() > MAX_MESSAGE_BYTES {
                        return Err(WireError::Protocol("message too large"));
                    }
                    if header.fin {
                        let whole = self.fragments.take().unwrap_or_default();
                        on_message(&whole);
                    }
                }
                OP_CLOSE => {
                    let code = payload
                        .get(..2)
                        .map_or(1005, |code| u16::from_be_bytes([code[0], code[1]]));
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                    return Err(WireError::Closed {
                        code,
                        reason: reason.into_owned(),
                    });
                }
                OP_PING => self.pongs.push(payload.to_vec()),
                OP_PONG => {}
                _ => return Err(WireError::Protocol("unknown opcode")),
            }
            position = end;
        }
        Ok(position)
    }

    async fn answer_pings(&mut self) -> Result<(), WireError> {
        for payload in std::mem::take(&mut self.pongs) {
            self.send_frame(OP_PONG, &payload).await?;
        }
        Ok(())
    }

    /// Sends one data message as a single masked frame.
    ///
    /// # Errors
    /// [`WireError::Io`] when the write fails.
    pub(crate) async fn send(&mut self, kind: DataKind, payload: &[u8]) -> Result<(), WireError> {
        let opcode = match kind {
            DataKind::Text => OP_TEXT,
            DataKind::Binary => OP_BINARY,
        };
        self.send_frame(opcode, payload).await
    }

    /// Sends a close frame (normal closure); the caller drops the socket afterwards.
    ///
    /// # Errors
    /// [`WireError::Io`] when the write fails.
    pub(crate) async fn close(&mut self) -> Result<(), WireError> {
        self.send_frame(OP_CLOSE, &1000u16.to_be_bytes()).await
    }

    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<(), WireError> {
        let mask = self.next_mask().to_be_bytes();
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            length @ 0..=125 => frame.push(0x80 | length as u8),
            length @ 126..=0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(length as u16).to_be_bytes());
            }
            length => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(length as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(
            payload
                .iter()
                .enumerate()
                .map(|(index, byte)| byte ^ mask[index % 4]),
        );
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    fn next_mask(&mut self) -> u32 {
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        x
    }
}

/// The fixed part of a received frame.
#[derive(Debug, PartialEq, Eq)]
struct FrameHeader {
    fin: bool,
    opcode: u8,
    header_bytes: usize,
    payload_bytes: usize,
}

impl FrameHeader {
    /// Parses a header at the start of `data`; `None` when it is not complete yet.
    fn parse(data: &[u8]) -> Result<Option<Self>, WireError> {
        let [first, second, ..] = *data else {
            return Ok(None);
        };
        if first & 0x70 != 0 {
            return Err(WireError::Protocol(
                "reserved bits set (no extension was agreed)",
            ));
        }
        if second & 0x80 != 0 {
            return Err(WireError::Protocol("masked frame from the server"));
        }
        let (header_bytes, payload_bytes) = match second & 0x7F {
            126 => {
                let Some(length) = data.get(2..4) else {
                    return Ok(None);
                };
                (4, usize::from(u16::from_be_bytes([length[0], length[1]])))
            }
            127 => {
                let Some(length) = data.get(2..10) else {
                    return Ok(None);
                };
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(length);
                let length = usize::try_from(u64::from_be_bytes(bytes))
                    .map_err(|_| WireError::Protocol("frame too large"))?;
                (10, length)
            }
            length => (2, usize::from(length)),
        };
        if payload_bytes > MAX_MESSAGE_BYTES {
            return Err(WireError::Protocol("frame too large"));
        }
        Ok(Some(FrameHeader {
            fin: first & 0x80 != 0,
            opcode: first & 0x0F,
            header_bytes,
            payload_bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_every_length_form_parse() {
        assert_eq!(FrameHeader::parse(&[0x81]).unwrap(), None);
        assert_eq!(
            FrameHeader::parse(&[0x81, 5]).unwrap(),
            Some(FrameHeader {
                fin: true,
                opcode: OP_TEXT,
                header_bytes: 2,
                payload_bytes: 5
            })
        );
        assert_eq!(FrameHeader::parse(&[0x02, 126, 1]).unwrap(), None);
        let medium = FrameHeader::parse(&[0x02, 126, 1, 0]).unwrap().unwrap();
        assert_eq!(
            (medium.fin, medium.payload_bytes, medium.header_bytes),
            (false, 256, 4)
        );
        let large = FrameHeader::parse(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((large.payload_bytes, large.header_bytes), (65_536, 10));
    }

    #[test]
    fn masked_oversized_and_extension_frames_are_refused() {
        assert!(FrameHeader::parse(&[0x81, 0x85]).is_err());
        assert!(FrameHeader::parse(&[0xC1, 1]).is_err());
        assert!(FrameHeader::parse(&[0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 0]).is_err());
    }

    async fn pair() -> (WireSocket, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut server, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while find(&head, b"\r\n\r\n").is_none() {
                server.readable().await.unwrap();
                let mut chunk = [0u8; 1024];
                match server.try_read(&mut chunk) {
                    Ok(read) => head.extend_from_slice(&chunk[..read]),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => panic!("{error}"),
                }
            }
            assert!(head.starts_with(b"GET /path HTTP/1.1\r\n"));
            // The answer and a first frame in one write: the frame must not be lost.
            server
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x02hi")
                .await
                .unwrap();
            server
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let socket = WireSocket::upgrade(stream, "localhost", "/path", Some("p"))
            .await
            .unwrap();
        (socket, server.await.unwrap())
    }

    async fn messages(socket: &mut WireSocket) -> Result<Vec<String>, WireError> {
        let mut seen = Vec::new();
        socket
            .read(|message| seen.push(String::from_utf8_lossy(message).into_owned()))
            .await?;
        Ok(seen)
    }

    #[tokio::test]
    async fn frames_split_fragmented_and_pinged_arrive_whole() {
        let (mut socket, mut server) = pair().await;
        assert_eq!(messages(&mut socket).await.unwrap(), ["hi"]);
        // Half a frame, then the rest with a fragmented message and a ping.
        server.write_all(b"\x81\x05hel").await.unwrap();
        server.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(messages(&mut socket).await.unwrap().is_empty());
        server
            .write_all(b"lo\x01\x02ab\x89\x01p\x80\x01c")
            .await
            .unwrap();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            seen.extend(messages(&mut socket).await.unwrap());
        }
        assert_eq!(seen, ["hello", "abc"]);
        // The ping was answered with a masked pong carrying its payload.
        let mut pong = [0u8; 7];
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut pong)
            .await
            .unwrap();
        assert_eq!(pong[0], 0x80 | OP_PONG);
        assert_eq!(pong[1], 0x80 | 1);
        assert_eq!(pong[6] ^ pong[2], b'p');
    }

    #[tokio::test]
    async fn sent_frames_are_masked_and_close_is_reported() {
        let (mut socket, mut server) = pair().await;
        socket.send(DataKind::Text, b"abc").await.unwrap();
        let mut frame = [0u8; 9];
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut frame)
            .await
            .unwrap();
        assert_eq!(&frame[..2], &[0x81, 0x83]);
        let unmasked: Vec<u8> = (0..3).map(|i| frame[6 + i] ^ frame[2 + i % 4]).collect();
        assert_eq!(unmasked, b"abc");
        assert_eq!(messages(&mut socket).await.unwrap(), ["hi"]);
        server.write_all(b"\x88\x05\x0f\xa0bye").await.unwrap();
        match messages(&mut socket).await {
            Err(WireError::Closed { code, reason }) => {
                assert_eq!((code, reason.as_str()), (4000, "bye"))
            }
            other => panic!("{other:?}"),
        }
    }
}
