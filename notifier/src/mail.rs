//! Mail transports: `.eml` files in a folder (the embedded default) or SMTP through lettre.
//! A send error says whether it is worth retrying.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
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

    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SendError::Transient("mail pool closed".into()))?;
        let bytes = message.formatted();
        let reused = self.idle.lock().await.pop();
        let fresh = reused.is_none();
        let mut conn = match reused {
            Some(c) if !c.has_broken() => c,
            _ => self.connect().await?,
        };
        let first = tokio::time::timeout(self.timeout, conn.send(message.envelope(), &bytes)).await;
        let result = match first {
            Ok(Ok(_)) => Ok(()),
            // A reused connection the server had closed: once more on a fresh one.
            Ok(Err(e)) if !fresh && !e.is_permanent() && !e.is_transient() => {
                conn.abort().await;
                conn = self.connect().await?;
                match tokio::time::timeout(self.timeout, conn.send(message.envelope(), &bytes))
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
            Ok(()) => {
                let mut idle = self.idle.lock().await;
                if idle.len() < self.max_idle {
                    idle.push(conn);
                }
            }
            Err(SendError::Permanent(_)) if !conn.has_broken() => {
                // The server refused this message; the connection itself is fine after RSET.
                let _ = conn.command(lettre::transport::smtp::commands::Rset).await;
                let mut idle = self.idle.lock().await;
                if idle.len() < self.max_idle {
                    idle.push(conn);
                }
            }
            Err(_) => conn.abort().await,
        }
        result
    }
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
        let message = build(mail)?;
        match self {
            Mailer::File { dir } => write_eml(dir, &mail.message_id, &message.formatted()).await,
            Mailer::Plain(pool) => pool.send(&message).await,
            Mailer::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| {
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

/// Builds the MIME message: plain text and HTML alternatives, our stable Message-ID.
pub fn build(mail: &OutgoingMail) -> Result<Message, SendError> {
    let mut b = Message::builder()
        .from(mailbox(&mail.from)?)
        .subject(mail.subject.clone())
        .message_id(Some(mail.message_id.clone()));
    if mail.to.is_empty() {
        return Err(SendError::Permanent("message has no recipient".into()));
    }
    for t in &mail.to {
        b = b.to(mailbox(t)?);
    }
    for c in &mail.cc {
        b = b.cc(mailbox(c)?);
    }
    b.multipart(MultiPart::alternative_plain_html(
        mail.text.clone(),
        mail.html.clone(),
    ))
    .map_err(|e| SendError::Permanent(format!("cannot build message: {e}")))
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
