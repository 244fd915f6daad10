//! Mail transports: `.eml` files in a folder (the embedded default) or SMTP through lettre.
//! A send error says whether it is worth retrying.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    None,
    StartTls,
    Tls,
}

/// Plain values from the `[mail]` section.
#[derive(Clone, Debug)]
pub enum TransportConfig {
    File {
        dir: PathBuf,
    },
    Smtp {
        host: String,
        port: u16,
        tls: TlsMode,
        username: String,
        password: Option<String>,
        max_connections: u32,
        timeout: Duration,
    },
}

/// One message as stored in the outbox.
#[derive(Clone, Debug)]
pub struct OutgoingMail {
    pub message_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later: 4xx, connection refused, timeout, disk full.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help: 5xx, a bad address.
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
}

#[derive(Clone)]
pub enum Mailer {
    File {
        dir: PathBuf,
    },
    /// SMTP with TLS, through lettre's pooled transport.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Plain SMTP (a local relay) over our own pool of connections with TCP_NODELAY: lettre
    /// writes a message body and its final `.` in two writes, and with Nagle's algorithm that
    /// costs a delayed-ACK wait (~40 ms) per message; see BENCHMARKS.md.
    Plain(std::sync::Arc<PlainPool>),
}

/// A small pool of plain SMTP connections.
pub struct PlainPool {
    host: String,
    port: u16,
    timeout: Duration,
    credentials: Option<Credentials>,
    idle: tokio::sync::Mutex<Vec<lettre::transport::smtp::client::AsyncSmtpConnection>>,
    max_idle: usize,
    /// At most `max_connections` conversations at once, however many callers send.
    slots: tokio::sync::Semaphore,
}

impl PlainPool {
    async fn connect(
        &self,
    ) -> Result<lettre::transport::smtp::client::AsyncSmtpConnection, SendError> {
        use lettre::transport::smtp::client::AsyncSmtpConnection;
        use lettre::transport::smtp::extension::ClientId;
        let addr = format!("{}:{}", self.host, self.port);
        let stream = tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(&addr))
            .await
            .map_err(|_| SendError::Transient(format!("connection to {addr} timed out")))?
            .map_err(|e| SendError::Transient(format!("cannot connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let hello = ClientId::default();
        let mut conn = tokio::time::timeout(
            self.timeout,
            AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello),
        )
        .await
        .map_err(|_| SendError::Transient(format!("{addr} did not greet in time")))?
        .map_err(classify)?;
        if let Some(c) = &self.credentials {
            use lettre::transport::smtp::authentication::Mechanism;
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .await
                .map_err(classify)?;
        }
        Ok(conn)
    }

    async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError> {
        // A bad address fails the message without waiting for a slot or connecting (with the
        // server down, it would otherwise be retried as a transient failure).
        let addrs = addresses(mail)?;
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SendError::Transient("mail pool closed".into()))?;
        let reused = self.idle.lock().await.pop();
        let fresh = reused.is_none();
        let mut conn = match reused {
            Some(c) if !c.has_broken() => c,
            _ => self.connect().await?,
        };
        // Built for the connection it goes over: 8-bit text where the server takes it.
        let message = match build_with(mail, addrs.clone(), eight_bit_mime(&conn)) {
            Ok(m) => m,
            Err(e) => {
                self.give_back(conn).await;
                return Err(e);
            }
        };
        let first = tokio::time::timeout(
            self.timeout,
            conn.send(message.envelope(), &message.formatted()),
        )
        .await;
        let result = match first {
            Ok(Ok(_)) => Ok(()),
            // A reused connection the server had closed: once more on a fresh one.
            Ok(Err(e)) if !fresh && !e.is_permanent() && !e.is_transient() => {
                conn.abort().await;
                conn = self.connect().await?;
                let message = build_with(mail, addrs, eight_bit_mime(&conn))?;
                match tokio::time::timeout(
                    self.timeout,
                    conn.send(message.envelope(), &message.formatted()),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(classify(e)),
                    Err(_) => Err(SendError::Transient("SMTP send timed out".into())),
                }
            }
            Ok(Err(e)) => Err(classify(e)),
            Err(_) => Err(SendError::Transient("SMTP send timed out".into())),
        };
        match &result {
            Ok(()) => self.give_back(conn).await,
            Err(SendError::Permanent(_)) if !conn.has_broken() => {
                // The server refused this message; the connection itself is fine after RSET.
                let _ = conn.command(lettre::transport::smtp::commands::Rset).await;
                self.give_back(conn).await;
            }
            Err(_) => conn.abort().await,
        }
        result
    }

    /// Keeps a working connection for the next message, up to the pool's size.
    async fn give_back(&self, conn: lettre::transport::smtp::client::AsyncSmtpConnection) {
        let mut idle = self.idle.lock().await;
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}

/// Whether the server announced 8BITMIME (RFC 6152), so text may go as UTF-8 octets.
fn eight_bit_mime(conn: &lettre::transport::smtp::client::AsyncSmtpConnection) -> bool {
    conn.server_info()
        .supports_feature(lettre::transport::smtp::extension::Extension::EightBitMime)
}

fn classify(e: lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(e.to_string())
    } else {
        SendError::Transient(e.to_string())
    }
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::File { dir } => write!(f, "Mailer::File({})", dir.display()),
            Mailer::Smtp(_) => f.write_str("Mailer::Smtp"),
            Mailer::Plain(p) => write!(f, "Mailer::Plain({}:{})", p.host, p.port),
        }
    }
}

impl Mailer {
    /// Builds the transport. Does not connect: an SMTP server that is down at start is a
    /// transient failure of the first send, not a failure to start.
    pub fn new(cfg: &TransportConfig) -> Result<Mailer, String> {
        match cfg {
            TransportConfig::File { dir } => Ok(Mailer::File { dir: dir.clone() }),
            TransportConfig::Smtp {
                host,
                port,
                tls,
                username,
                password,
                max_connections,
                timeout,
            } if *tls == TlsMode::None => Ok(Mailer::Plain(std::sync::Arc::new(PlainPool {
                host: host.clone(),
                port: *port,
                timeout: *timeout,
                credentials: (!username.is_empty()).then(|| {
                    Credentials::new(username.clone(), password.clone().unwrap_or_default())
                }),
                idle: tokio::sync::Mutex::new(Vec::new()),
                max_idle: (*max_connections).max(1) as usize,
                slots: tokio::sync::Semaphore::new((*max_connections).max(1) as usize),
            }))),
            TransportConfig::Smtp {
                host,
                port,
                tls,
                username,
                password,
                max_connections,
                timeout,
            } => {
                let mut b = match tls {
                    TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                    TlsMode::StartTls | TlsMode::Tls => {
                        let params = TlsParameters::new(host.clone())
                            .map_err(|e| format!("TLS for {host}: {e}"))?;
                        let t = if *tls == TlsMode::Tls {
                            Tls::Wrapper(params)
                        } else {
                            Tls::Required(params)
                        };
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(t)
                    }
                };
                b = b.port(*port).timeout(Some(*timeout)).pool_config(
                    lettre::transport::smtp::PoolConfig::new()
                        .max_size((*max_connections).max(1))
                        .idle_timeout(Duration::from_secs(30)),
                );
                if !username.is_empty() {
                    b = b.credentials(Credentials::new(
                        username.clone(),
                        password.clone().unwrap_or_default(),
                    ));
                }
                Ok(Mailer::Smtp(b.build()))
            }
        }
    }

    pub async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError> {
        match self {
            Mailer::File { dir } => {
                write_eml(dir, &mail.message_id, &build(mail)?.formatted()).await
            }
            Mailer::Plain(pool) => pool.send(mail).await,
            Mailer::Smtp(t) => t.send(build(mail)?).await.map(|_| ()).map_err(|e| {
                if e.is_permanent() {
                    SendError::Permanent(e.to_string())
                } else {
                    // 4xx, connection refused, timeouts and TLS trouble may pass.
                    SendError::Transient(e.to_string())
                }
            }),
        }
    }
}

fn mailbox(addr: &str) -> Result<Mailbox, SendError> {
    addr.parse::<Mailbox>()
        .map_err(|e| SendError::Permanent(format!("bad address `{addr}`: {e}")))
}

/// Builds the MIME message: plain text and HTML alternatives, our stable Message-ID; the text
/// parts in base64 or quoted-printable, whichever is shorter, which every server takes.
pub fn build(mail: &OutgoingMail) -> Result<Message, SendError> {
    build_for(mail, false)
}

/// [`build`], for a server that announced 8BITMIME when `eight_bit`: then the text parts go as
/// the UTF-8 they are (`Content-Transfer-Encoding: 8bit`), a third smaller than base64 for
/// Chinese text (a digest of 50 items: 17.2 KB against 25.9 KB) and without the encoding work
/// (BENCHMARKS.md); a part with a line longer than 8bit allows (998 octets) still goes
/// encoded. Only the plain pool knows what its connection announced; lettre's TLS pool and the
/// `.eml` files get [`build`].
pub fn build_for(mail: &OutgoingMail, eight_bit: bool) -> Result<Message, SendError> {
    build_with(mail, addresses(mail)?, eight_bit)
}

/// A message's sender and recipients, parsed.
#[derive(Clone)]
struct Addresses {
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
}

/// Parses the addresses of `mail`: a bad one, or no recipient, is a permanent failure of this
/// message, known before any connection is taken for it.
fn addresses(mail: &OutgoingMail) -> Result<Addresses, SendError> {
    if mail.to.is_empty() {
        return Err(SendError::Permanent("message has no recipient".into()));
    }
    let all = |v: &[String]| v.iter().map(|a| mailbox(a)).collect::<Result<Vec<_>, _>>();
    Ok(Addresses {
        from: mailbox(&mail.from)?,
        to: all(&mail.to)?,
        cc: all(&mail.cc)?,
    })
}

/// [`build_for`] with the addresses already parsed.
fn build_with(mail: &OutgoingMail, a: Addresses, eight_bit: bool) -> Result<Message, SendError> {
    let mut b = Message::builder()
        .from(a.from)
        .subject(mail.subject.clone())
        .message_id(Some(mail.message_id.clone()));
    for t in a.to {
        b = b.to(t);
    }
    for c in a.cc {
        b = b.cc(c);
    }
    let part = |content_type: ContentType, text: &str| {
        let body = eight_bit
            .then(|| eight_bit_body(text))
            .flatten()
            .unwrap_or_else(|| Body::new(text.to_owned()));
        SinglePart::builder().header(content_type).body(body)
    };
    b.multipart(
        MultiPart::alternative()
            .singlepart(part(ContentType::TEXT_PLAIN, &mail.text))
            .singlepart(part(ContentType::TEXT_HTML, &mail.html)),
    )
    .map_err(|e| SendError::Permanent(format!("cannot build message: {e}")))
}

/// Longest line an 8bit body may have, in octets, without its CRLF (RFC 5322 2.1.1).
const MAX_8BIT_LINE: usize = 998;

/// `text` as an 8bit body: its lines ended by CRLF, when every line fits in
/// [`MAX_8BIT_LINE`] octets and it holds no NUL and no CR but before a line feed (a lone CR
/// goes encoded). lettre's own chooser allows 8bit only for lines under 76 octets (the limit
/// of encoded lines, which a line of 26 Chinese characters already passes), so it is not used.
fn eight_bit_body(text: &str) -> Option<Body> {
    // Without an early exit, so the compiler checks many bytes at a time.
    let (nul, cr) = text
        .bytes()
        .fold((false, false), |(n, c), b| (n | (b == 0), c | (b == b'\r')));
    if nul {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() + text.len() / 16 + 2);
    for (i, line) in text.split('\n').enumerate() {
        let line = if cr {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.contains('\r') {
                return None;
            }
            line
        } else {
            line
        };
        if line.len() > MAX_8BIT_LINE {
            return None;
        }
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line.as_bytes());
    }
    Some(Body::dangerous_pre_encoded(
        out,
        ContentTransferEncoding::EightBit,
    ))
}

/// Writes one `.eml` file named after the Message-ID, via a temporary file and a rename, so a
/// crash never leaves half a message and a re-send overwrites instead of duplicating.
async fn write_eml(dir: &std::path::Path, message_id: &str, bytes: &[u8]) -> Result<(), SendError> {
    let name: String = message_id
        .trim_matches(|c| c == '<' || c == '>')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let io = |e: std::io::Error| {
        SendError::Transient(format!("cannot write mail to {}: {e}", dir.display()))
    };
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, bytes).await.map_err(io)?;
    tokio::fs::rename(&tmp, dir.join(format!("{name}.eml")))
        .await
        .map_err(io)?;
    Ok(())
}

/// The `Message-ID` header of a raw message, for tests and tools that count deliveries.
pub fn message_id_of(raw: &str) -> Option<String> {
    raw.lines()
        .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        .map(|l| l[11..].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SmtpServer;

    fn body_of(text: &str) -> Option<(Vec<u8>, ContentTransferEncoding)> {
        eight_bit_body(text).map(|b| {
            let enc = b.encoding();
            (b.into_vec(), enc)
        })
    }

    #[test]
    fn eight_bit_bodies_end_lines_with_crlf_and_refuse_what_8bit_cannot_carry() {
        let (bytes, enc) = body_of("整改\n进展\n").expect("8bit");
        assert_eq!(enc, ContentTransferEncoding::EightBit);
        assert_eq!(bytes, "整改\r\n进展\r\n".as_bytes());
        // CRLF endings stay CRLF, not CRCRLF.
        assert_eq!(body_of("甲\r\n乙").expect("8bit").0, "甲\r\n乙".as_bytes());
        // A line of 998 octets fits; of 999, not (it goes encoded).
        assert!(body_of(&"a".repeat(MAX_8BIT_LINE)).is_some());
        assert!(body_of(&format!("ok\n{}", "a".repeat(MAX_8BIT_LINE + 1))).is_none());
        // 333 Chinese characters are 999 octets.
        assert!(body_of(&"整".repeat(333)).is_none());
        assert!(body_of("a lone\rCR").is_none());
        assert!(body_of("a NUL\0").is_none());
    }

    fn plain(port: u16) -> Mailer {
        crate::testing::plain_mailer(port, 2, Duration::from_secs(10))
    }

    fn mail(text: &str, html: &str) -> OutgoingMail {
        OutgoingMail {
            message_id: "<m1@rectify.test>".into(),
            from: "整改办 <zgb@example.gov.cn>".into(),
            to: vec!["fgj@example.gov.cn".into()],
            cc: vec![],
            subject: "【整改提醒】区发改局".into(),
            text: text.into(),
            html: html.into(),
        }
    }

    /// Lines longer than 76 octets (26 Chinese characters), and lines that start with a dot,
    /// which SMTP's transparency must double on the wire and the server undo.
    const TEXT: &str = "区发改局:\n\n1. 关于落实全面从严治党主体责任不到位、基层党组织建设薄弱问题的整改措施\n.以点开头的一行\n..两个点\n.\n最后一行";

    #[tokio::test]
    async fn text_goes_8bit_to_a_server_that_announces_8bitmime() {
        let smtp = SmtpServer::start().await.expect("smtp");
        let html = format!("<p>{}</p>", "整改措施".repeat(300)); // one line of 3,600 octets
        plain(smtp.port())
            .send(&mail(TEXT, &html))
            .await
            .expect("send");
        let got = smtp.received();
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert!(r.body_8bit, "declared BODY=8BITMIME");
        assert!(
            r.data.contains("基层党组织建设薄弱问题的整改措施"),
            "the text as it is"
        );
        assert!(
            r.data
                .to_ascii_lowercase()
                .contains("content-transfer-encoding: 8bit")
        );
        assert_eq!(r.text().replace("\r\n", "\n"), TEXT);
        // The HTML's one long line does not fit 8bit: that part goes encoded, intact.
        assert_eq!(r.html().replace("\r\n", "\n"), html);
        assert!(
            !r.data.contains("整改措施整改措施"),
            "the long line is encoded"
        );
    }

    #[tokio::test]
    async fn text_goes_encoded_to_a_server_without_8bitmime() {
        let smtp = SmtpServer::start().await.expect("smtp");
        smtp.seven_bit_only();
        plain(smtp.port())
            .send(&mail(TEXT, "<p>整改</p>"))
            .await
            .expect("send");
        let got = smtp.received();
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert!(!r.body_8bit);
        assert!(r.data.is_ascii(), "nothing 8-bit on the wire");
        assert_eq!(r.text().replace("\r\n", "\n"), TEXT);
        assert_eq!(r.html().replace("\r\n", "\n"), "<p>整改</p>");
    }

    #[tokio::test]
    async fn a_bad_address_fails_for_good_before_any_connection() {
        let smtp = SmtpServer::start().await.expect("smtp");
        let mailer = plain(smtp.port());
        for (to, cc) in [("not an address", ""), ("fgj@example.gov.cn", "no@@pe")] {
            let mut m = mail("x", "x");
            m.to = vec![to.into()];
            m.cc = [cc]
                .into_iter()
                .filter(|c| !c.is_empty())
                .map(Into::into)
                .collect();
            match mailer.send(&m).await {
                Err(SendError::Permanent(e)) => assert!(e.contains("bad address"), "{e}"),
                other => panic!("{to} / {cc}: {other:?}"),
            }
        }
        let mut m = mail("x", "x");
        m.to.clear();
        assert!(matches!(
            mailer.send(&m).await,
            Err(SendError::Permanent(_))
        ));
        assert_eq!(smtp.connections(), 0, "no connection was opened");
        // With the server down, still permanent, not "cannot connect" (which is retried).
        smtp.stop();
        let mut m = mail("x", "x");
        m.from = "整改办 <zgb@@example>".into();
        assert!(matches!(
            mailer.send(&m).await,
            Err(SendError::Permanent(_))
        ));
        // A good message to the stopped server is a transient failure.
        assert!(matches!(
            mailer.send(&mail("x", "x")).await,
            Err(SendError::Transient(_))
        ));
    }
}
