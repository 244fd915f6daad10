//! A real SMTP server for tests and benchmarks, in the test's own process: it speaks SMTP over
//! TCP on loopback (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), records every message, and can be
//! told to refuse some recipients temporarily (4xx) or permanently (5xx), or to answer each
//! message slowly (a loaded server, so that a delivery pass takes a while).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub rcpts: Vec<String>,
    pub data: String,
    /// The client declared the body 8-bit (`MAIL FROM:<…> BODY=8BITMIME`).
    pub body_8bit: bool,
}

impl Received {
    pub fn message_id(&self) -> Option<String> {
        crate::mail::message_id_of(&self.data)
    }

    /// The decoded subject. Long subjects arrive folded over several lines of encoded words.
    pub fn subject(&self) -> Option<String> {
        Some(decode_rfc2047(&self.header("Subject")?))
    }

    /// The decoded plain-text part.
    pub fn text(&self) -> String {
        decode_body(&self.data)
    }

    /// The decoded HTML part (empty when there is none).
    pub fn html(&self) -> String {
        decode_part(&self.data, "text/html").unwrap_or_default()
    }

    /// A header's value, unfolded (continuation lines joined with one space).
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let mut out: Option<String> = None;
        for line in self.data.lines() {
            if line.is_empty() {
                break;
            }
            if let Some(v) = &mut out {
                if line.starts_with(' ') || line.starts_with('\t') {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if line.to_ascii_lowercase().starts_with(&prefix) {
                out = Some(line[prefix.len()..].trim().to_string());
            }
        }
        out
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Recipients refused with 550.
    permanent: Vec<String>,
    /// Recipients refused with 451, how many more times.
    transient: HashMap<String, u32>,
    connections: u64,
    /// How long to wait after each message's data before accepting it.
    delay: Duration,
    /// Do not announce 8BITMIME, and refuse 8-bit bodies (a server of before RFC 6152).
    seven_bit_only: bool,
}

/// The server; dropped with the test. Clone it to share.
#[derive(Clone)]
pub struct SmtpServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Set once by [`SmtpServer::stop`]; the listener and every open session watch it.
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

impl SmtpServer {
    /// Starts listening on a free loopback port.
    pub async fn start() -> std::io::Result<SmtpServer> {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> std::io::Result<SmtpServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let server = SmtpServer {
            addr,
            state: state.clone(),
            stop: Arc::new(stop),
        };
        tokio::spawn(async move {
            let mut until_stopped = stopped.clone();
            loop {
                tokio::select! {
                    _ = until_stopped.wait_for(|s| *s) => break,
                    accepted = listener.accept() => {
                        let Ok((sock, _)) = accepted else { continue };
                        let state = state.clone();
                        let mut until_stopped = stopped.clone();
                        tokio::spawn(async move {
                            // Dropping the session closes its socket.
                            tokio::select! {
                                _ = session(sock, state) => {}
                                _ = until_stopped.wait_for(|s| *s) => {}
                            }
                        });
                    }
                }
            }
        });
        Ok(server)
    }

    /// "The SMTP server is down": the port closes and so does every open connection (a client
    /// that keeps connections for reuse must not get through a stopped server).
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn refuse_permanently(&self, rcpt: &str) {
        self.lock().permanent.push(rcpt.to_ascii_lowercase());
    }

    pub fn refuse_temporarily(&self, rcpt: &str, times: u32) {
        self.lock()
            .transient
            .insert(rcpt.to_ascii_lowercase(), times);
    }

    /// Waits `delay` after each message's data before answering 250 (and recording it): every
    /// connection then carries at most one message per `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// From now on the server does not announce 8BITMIME (for new connections) and refuses a
    /// message declared or found 8-bit with 554, as a server of before RFC 6152 would.
    pub fn seven_bit_only(&self) {
        self.lock().seven_bit_only = true;
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    pub fn connections(&self) -> u64 {
        self.lock().connections
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A plain-SMTP mailer (no TLS, no login) to a test server's `port` on loopback.
pub fn plain_mailer(port: u16, max_connections: u32, timeout: Duration) -> crate::Mailer {
    crate::Mailer::new(&crate::TransportConfig::Smtp {
        host: "127.0.0.1".into(),
        port,
        tls: crate::TlsMode::None,
        username: String::new(),
        password: None,
        max_connections,
        timeout,
    })
    .expect("a plain SMTP transport")
}

/// A digest of `items` items to `u{n}@example.gov.cn`, rendered with the real Chinese
/// templates: the benchmarks' examples' message of a digest's size (50 items: 26.7 KB of 8bit
/// MIME).
pub fn sample_digest(n: usize, items: usize) -> crate::mail::OutgoingMail {
    let rows: Vec<_> = (0..items)
        .map(|k| {
            serde_json::json!({
                "id": k, "kind": "到期提醒", "round": "2026年第一轮巡视反馈问题", "number": format!("{n}-{k}"),
                "title": "基层党组织建设薄弱的问题整改措施",
                "due": "2026-12-31", "days": "剩余 3 个工作日", "light": "黄灯", "color": "orange",
                "progress": "已召开专题会议研究部署",
                "leader": "周诚",
            })
        })
        .collect();
    let ctx = serde_json::json!({"unit": "区发展和改革局", "today": "2026-12-01", "items": rows, "sender": "整改办"});
    let (text, html) = crate::render::Renderer::new(rectify_engine::Lang::Zh)
        .digest(&ctx)
        .expect("the digest templates render");
    crate::mail::OutgoingMail {
        message_id: format!("<d{n}@bench>"),
        from: "整改办 <zgb@example.gov.cn>".into(),
        to: vec![format!("u{n}@example.gov.cn")],
        cc: vec![],
        subject: format!("【整改提醒】区发展和改革局:{items} 项整改事项需关注(2026-12-01)"),
        text,
        html,
    }
}

/// A message of a few bytes to `u{n}@example.gov.cn`: the benchmarks' reference.
pub fn trivial_mail(n: usize) -> crate::mail::OutgoingMail {
    crate::mail::OutgoingMail {
        message_id: format!("<ref{n}@bench>"),
        from: "a@example.gov.cn".into(),
        to: vec![format!("u{n}@example.gov.cn")],
        cc: vec![],
        subject: "ref".into(),
        text: "x".into(),
        html: "x".into(),
    }
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

async fn session(sock: tokio::net::TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    lock(&state).connections += 1;
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 localhost ESMTP rectify-test\r\n").await?;
    let mut from = String::new();
    let mut body_8bit = false;
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            let reply: &[u8] = if lock(&state).seven_bit_only {
                b"250-localhost\r\n250 SIZE 52428800\r\n"
            } else {
                b"250-localhost\r\n250-SIZE 52428800\r\n250 8BITMIME\r\n"
            };
            w.write_all(reply).await?;
        } else if upper.starts_with("HELO") {
            w.write_all(b"250 localhost\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = addr_of(&cmd[10..]);
            body_8bit = upper.contains(" BODY=8BITMIME");
            rcpts.clear();
            w.write_all(b"250 2.1.0 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            let a = addr_of(&cmd[8..]);
            let reply: &[u8] = {
                let mut s = lock(&state);
                if s.permanent.contains(&a) {
                    b"550 5.1.1 mailbox unavailable\r\n"
                } else if let Some(n) = s.transient.get_mut(&a).filter(|n| **n > 0) {
                    *n -= 1;
                    b"451 4.3.0 try again later\r\n"
                } else {
                    rcpts.push(a);
                    b"250 2.1.5 OK\r\n"
                }
            };
            w.write_all(reply).await?;
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                w.write_all(b"554 5.5.1 no valid recipients\r\n").await?;
                continue;
            }
            w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let l = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(l);
            }
            let (delay, seven_bit_only) = {
                let s = lock(&state);
                (s.delay, s.seven_bit_only)
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if seven_bit_only && (body_8bit || !data.is_ascii()) {
                rcpts.clear();
                w.write_all(b"554 5.6.1 8-bit data not accepted\r\n")
                    .await?;
                continue;
            }
            lock(&state).received.push(Received {
                from: from.clone(),
                rcpts: std::mem::take(&mut rcpts),
                data,
                body_8bit,
            });
            w.write_all(b"250 2.0.0 queued\r\n").await?;
        } else if upper == "RSET" {
            rcpts.clear();
            w.write_all(b"250 OK\r\n").await?;
        } else if upper == "NOOP" {
            w.write_all(b"250 OK\r\n").await?;
        } else if upper == "QUIT" {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            w.write_all(b"502 5.5.2 command not implemented\r\n")
                .await?;
        }
    }
}

fn addr_of(s: &str) -> String {
    let s = s.trim();
    let inner = match (s.find('<'), s.find('>')) {
        (Some(a), Some(b)) if b > a => &s[a + 1..b],
        _ => s.split_whitespace().next().unwrap_or(""),
    };
    inner.to_ascii_lowercase()
}

/// Decodes `=?utf-8?b?…?=` and `=?utf-8?q?…?=` words (lettre encodes non-ASCII subjects).
/// Adjacent encoded words are joined without the white space between them (RFC 2047 §6.2), and
/// their bytes are decoded together: an encoder may split one character across two words.
pub fn decode_rfc2047(s: &str) -> String {
    let mut out = String::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut in_encoded = false;
    for word in s.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        let encoded = (lower.starts_with("=?utf-8?b?") || lower.starts_with("=?utf-8?q?"))
            && word.ends_with("?=")
            && word.len() >= 12;
        if encoded && !in_encoded && !out.is_empty() {
            out.push(' ');
        }
        in_encoded = encoded;
        if encoded && lower.as_bytes()[8] == b'b' {
            bytes.extend(b64(&word[10..word.len() - 2]));
        } else if encoded {
            bytes.extend(qp(&word[10..word.len() - 2].replace('_', " ")));
        } else {
            out.push_str(&String::from_utf8_lossy(&std::mem::take(&mut bytes)));
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out.push_str(&String::from_utf8_lossy(&bytes));
    out
}

fn b64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = val(c) else { continue };
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

fn qp(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        if b[i] == b'=' && (i + 1 == b.len() || b[i + 1] == b'\n' || b[i + 1] == b'\r') {
            // Soft line break.
            i += 1;
            while i < b.len() && (b[i] == b'\r' || b[i] == b'\n') {
                i += 1;
            }
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The decoded text/plain part of a raw message (base64 or quoted-printable); the raw message
/// when it has no such part.
pub fn decode_body(raw: &str) -> String {
    decode_part(raw, "text/plain").unwrap_or_else(|| raw.to_string())
}

/// The decoded part of type `mime` (`text/plain`, `text/html`) of a raw message.
pub fn decode_part(raw: &str, mime: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    let start = lower.find(&format!("content-type: {mime}"))?;
    let part = &raw[start..];
    let Some(body_at) = part
        .find("\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| part.find("\n\n").map(|i| i + 2))
    else {
        return Some(String::new());
    };
    let headers = part[..body_at].to_ascii_lowercase();
    let body = &part[body_at..];
    let body = body.split("\r\n--").next().unwrap_or(body);
    Some(if headers.contains("base64") {
        String::from_utf8_lossy(&b64(body)).to_string()
    } else if headers.contains("quoted-printable") {
        String::from_utf8_lossy(&qp(body)).to_string()
    } else {
        body.to_string()
    })
}
