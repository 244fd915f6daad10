//! The tamper-evident record: every event's hash covers the previous event's hash and the event's
//! canonical content (including the hashes of its evidence files). A chain per item keeps writers
//! of different items independent; the item row stores the head (last hash and sequence number),
//! so deleting the newest event is detected too.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of an item's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The content of one event as it is hashed.
#[derive(Clone, Debug)]
pub struct ChainLink<'a> {
    pub item_id: i64,
    pub seq: i64,
    pub kind: &'a str,
    pub actor: &'a str,
    pub at: DateTime<Utc>,
    pub payload: &'a Value,
    /// sha256 of each evidence file, in the order recorded.
    pub evidence: &'a [String],
    pub prev_hash: &'a str,
}

/// Time as hashed and stored: UTC, microseconds. Callers truncate `now` to microseconds before
/// use (see [`truncate_to_micros`]) so the value read back from any database hashes the same.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Drops sub-microsecond precision, which PostgreSQL does not keep.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{SubsecRound, Timelike};
    let micros = at.nanosecond() / 1_000 * 1_000;
    at.with_nanosecond(micros)
        .unwrap_or_else(|| at.trunc_subsecs(6))
}

impl ChainLink<'_> {
    /// The canonical bytes: JSON with keys sorted at every level, no insignificant whitespace.
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"actor\":");
        push_json_string(&mut out, self.actor);
        out.push_str(",\"at\":");
        push_json_string(&mut out, &format_time(self.at));
        out.push_str(",\"evidence\":[");
        for (i, e) in self.evidence.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_string(&mut out, e);
        }
        out.push_str("],\"item\":");
        out.push_str(&self.item_id.to_string());
        out.push_str(",\"kind\":");
        push_json_string(&mut out, self.kind);
        out.push_str(",\"payload\":");
        canonical_json(self.payload, &mut out);
        out.push_str(",\"prev\":");
        push_json_string(&mut out, self.prev_hash);
        out.push_str(",\"seq\":");
        out.push_str(&self.seq.to_string());
        out.push_str(",\"v\":1}");
        out
    }

    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical().as_bytes()))
    }
}

/// Writes `value` as JSON with object keys sorted, whatever order the map kept them in.
pub fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, k);
                out.push(':');
                canonical_json(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The canonical JSON text of a value, as stored in the event row.
pub fn canonical_string(value: &Value) -> String {
    let mut s = String::new();
    canonical_json(value, &mut s);
    s
}

fn push_json_string(out: &mut String, s: &str) {
    out.push_str(&Value::String(s.to_string()).to_string());
}

/// One stored event, as read back for verification, and as an audit export carries it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredLink {
    pub event_id: i64,
    pub seq: i64,
    pub kind: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub payload: Value,
    pub evidence: Vec<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// A break in an item's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainFault {
    /// The stored hash is not the hash of the stored content: the event was edited.
    HashMismatch { event_id: i64, seq: i64 },
    /// The event does not point at the one before it: an event was deleted, inserted or reordered.
    BrokenLink { event_id: i64, seq: i64 },
    /// Sequence numbers skip or repeat.
    BadSequence {
        event_id: i64,
        seq: i64,
        expected: i64,
    },
    /// The item row's head does not match the last event: the newest event was deleted or added.
    HeadMismatch { head_seq: i64, last_seq: i64 },
    /// The evidence index (file names, sizes) disagrees with what the event recorded.
    EvidenceRecordMismatch { event_id: i64, seq: i64 },
    /// A recorded evidence file is not in the evidence folder any more.
    EvidenceFileMissing { event_id: i64, sha256: String },
    /// A recorded evidence file's content no longer has its recorded hash.
    EvidenceFileChanged { event_id: i64, sha256: String },
}

impl ChainFault {
    pub fn describe(&self, item_id: i64, lang: crate::Lang) -> String {
        let zh = lang == crate::Lang::Zh;
        match self {
            ChainFault::HashMismatch { event_id, seq } => {
                if zh {
                    format!(
                        "事项 {item_id} 的第 {seq} 条记录(事件 {event_id})内容与其哈希不符:该记录被改动过"
                    )
                } else {
                    format!(
                        "item {item_id}, event {event_id} (#{seq}): content does not match its hash; the event was edited"
                    )
                }
            }
            ChainFault::BrokenLink { event_id, seq } => {
                if zh {
                    format!(
                        "事项 {item_id} 的第 {seq} 条记录(事件 {event_id})与前一条记录链接断开:有记录被删除、插入或调换"
                    )
                } else {
                    format!(
                        "item {item_id}, event {event_id} (#{seq}): does not link to the event before it; an event was deleted, inserted or reordered"
                    )
                }
            }
            ChainFault::BadSequence {
                event_id,
                seq,
                expected,
            } => {
                if zh {
                    format!(
                        "事项 {item_id} 的事件 {event_id} 序号为 {seq},应为 {expected}:有记录被删除或插入"
                    )
                } else {
                    format!(
                        "item {item_id}, event {event_id}: sequence number {seq} where {expected} was expected; an event was deleted or inserted"
                    )
                }
            }
            ChainFault::EvidenceRecordMismatch { event_id, seq } => {
                if zh {
                    format!(
                        "事项 {item_id} 的第 {seq} 条记录(事件 {event_id})的佐证材料登记与记录不符:佐证材料表被改动过"
                    )
                } else {
                    format!(
                        "item {item_id}, event {event_id} (#{seq}): the evidence index does not match what the event recorded; the evidence table was edited"
                    )
                }
            }
            ChainFault::EvidenceFileMissing { event_id, sha256 } => {
                if zh {
                    format!("事项 {item_id} 事件 {event_id} 的佐证文件 {sha256} 已不在佐证目录中")
                } else {
                    format!(
                        "item {item_id}, event {event_id}: evidence file {sha256} is missing from the evidence folder"
                    )
                }
            }
            ChainFault::EvidenceFileChanged { event_id, sha256 } => {
                if zh {
                    format!("事项 {item_id} 事件 {event_id} 的佐证文件 {sha256} 内容已被改动")
                } else {
                    format!(
                        "item {item_id}, event {event_id}: evidence file {sha256} was changed after it was recorded"
                    )
                }
            }
            ChainFault::HeadMismatch { head_seq, last_seq } => {
                if zh {
                    format!(
                        "事项 {item_id} 记录共 {last_seq} 条,但事项本身记载应有 {head_seq} 条:最新的记录被删除或添加"
                    )
                } else {
                    format!(
                        "item {item_id}: the item records {head_seq} events but {last_seq} are stored; the newest event was deleted or added"
                    )
                }
            }
        }
    }
}

/// Checks one item's events (ordered by their row order of `seq`) against the item's stored head.
/// Returns every fault found, first to last.
pub fn verify_chain(
    item_id: i64,
    links: &[StoredLink],
    head_seq: i64,
    head_hash: &str,
) -> Vec<ChainFault> {
    let mut faults = Vec::new();
    let mut prev = GENESIS.to_string();
    for (i, link) in links.iter().enumerate() {
        let expected = i as i64 + 1;
        if link.seq != expected {
            faults.push(ChainFault::BadSequence {
                event_id: link.event_id,
                seq: link.seq,
                expected,
            });
        }
        if link.prev_hash != prev {
            faults.push(ChainFault::BrokenLink {
                event_id: link.event_id,
                seq: link.seq,
            });
        }
        let computed = ChainLink {
            item_id,
            seq: link.seq,
            kind: &link.kind,
            actor: &link.actor,
            at: link.at,
            payload: &link.payload,
            evidence: &link.evidence,
            prev_hash: &link.prev_hash,
        }
        .hash();
        if computed != link.hash {
            faults.push(ChainFault::HashMismatch {
                event_id: link.event_id,
                seq: link.seq,
            });
        }
        prev = link.hash.clone();
    }
    let last_seq = links.last().map(|l| l.seq).unwrap_or(0);
    let last_hash = links.last().map(|l| l.hash.as_str()).unwrap_or(GENESIS);
    if last_seq != head_seq || last_hash != head_hash {
        faults.push(ChainFault::HeadMismatch { head_seq, last_seq });
    }
    faults
}

/// One event in an audit export: exactly what verification reads.
pub type ExportedEvent = StoredLink;

/// One item's record in an audit export.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportedItem {
    pub id: i64,
    pub round: String,
    pub number: String,
    pub title: String,
    pub state: String,
    pub head_seq: i64,
    pub head_hash: String,
    pub events: Vec<ExportedEvent>,
}

/// An audit export: the history of an item or a round with every chain hash, sealed with a
/// digest over its canonical content, so an inspector can check it on another machine with
/// `rectify audit verify --file`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditExport {
    pub format: String,
    pub exported_at: DateTime<Utc>,
    pub exported_by: String,
    pub scope: String,
    pub items: Vec<ExportedItem>,
    /// sha256 of the canonical JSON of everything above.
    pub seal: String,
    /// The office's signature over the seal, when the export was signed (`--sign-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ExportSignature>,
}

/// An ed25519 signature over an export's seal, with the public key it verifies against. The key
/// in the file says who claims to have signed; an inspector compares it with the key the office
/// published (`audit verify --file F --public-key KEY`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportSignature {
    pub algorithm: String,
    /// 32 bytes, hex.
    pub public_key: String,
    /// 64 bytes, hex.
    pub value: String,
}

pub const SIGNATURE_ALGORITHM: &str = "ed25519";

/// The public key (hex) of a signing key's 32-byte secret.
pub fn public_key_of(secret: &[u8; 32]) -> String {
    hex::encode(
        ed25519_dalek::SigningKey::from_bytes(secret)
            .verifying_key()
            .as_bytes(),
    )
}

pub const EXPORT_FORMAT: &str = "rectify-audit-export/1";

impl AuditExport {
    /// The seal over every field but the seal and the signature.
    pub fn compute_seal(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("seal");
            m.remove("signature");
        }
        hex::encode(Sha256::digest(canonical_string(&v).as_bytes()))
    }

    /// Signs the seal with the office's key (the seal covers everything else).
    pub fn sign(&mut self, secret: &[u8; 32]) {
        use ed25519_dalek::Signer;
        let key = ed25519_dalek::SigningKey::from_bytes(secret);
        let sig = key.sign(self.seal.as_bytes());
        self.signature = Some(ExportSignature {
            algorithm: SIGNATURE_ALGORITHM.into(),
            public_key: hex::encode(key.verifying_key().as_bytes()),
            value: hex::encode(sig.to_bytes()),
        });
    }

    /// The signature's problem, if any: `None` when it verifies against its public key.
    fn signature_problem(&self, sig: &ExportSignature, zh: bool) -> Option<String> {
        let bad = |zh_msg: &str, en_msg: &str| Some(if zh { zh_msg } else { en_msg }.to_string());
        if sig.algorithm != SIGNATURE_ALGORITHM {
            return bad(
                "签名算法不是 ed25519",
                "the signature's algorithm is not ed25519",
            );
        }
        let key: Option<[u8; 32]> = hex::decode(&sig.public_key)
            .ok()
            .and_then(|b| b.try_into().ok());
        let value: Option<[u8; 64]> = hex::decode(&sig.value).ok().and_then(|b| b.try_into().ok());
        let (Some(key), Some(value)) = (key, value) else {
            return bad(
                "签名或公钥格式有误",
                "the signature or its public key is malformed",
            );
        };
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
            return bad(
                "签名中的公钥无效",
                "the signature's public key is not valid",
            );
        };
        let sig = ed25519_dalek::Signature::from_bytes(&value);
        match key.verify_strict(self.seal.as_bytes(), &sig) {
            Ok(()) => None,
            Err(_) => bad(
                "签名不符:文件在签名后被改动过,或签名不是用这个公钥的私钥做的",
                "the signature does not match: the file was changed after it was signed, or it was not signed with this public key's private key",
            ),
        }
    }

    /// Checks the seal, the signature (when there is one, or when `expected_key` asks for one)
    /// and every item's chain; returns the problems, each in words.
    pub fn verify(&self, lang: crate::Lang, expected_key: Option<&str>) -> Vec<String> {
        let zh = lang == crate::Lang::Zh;
        let mut out = Vec::new();
        if self.format != EXPORT_FORMAT {
            out.push(if zh {
                format!("格式 {} 不是 {EXPORT_FORMAT}", self.format)
            } else {
                format!("format {} is not {EXPORT_FORMAT}", self.format)
            });
        }
        if self.compute_seal() != self.seal {
            out.push(if zh {
                "封存摘要不符:导出文件在导出后被改动过".to_string()
            } else {
                "the seal does not match: the file was changed after it was exported".to_string()
            });
        }
        match (&self.signature, expected_key) {
            (Some(sig), expected) => {
                out.extend(self.signature_problem(sig, zh));
                if let Some(k) = expected
                    && !k.trim().eq_ignore_ascii_case(&sig.public_key)
                {
                    out.push(if zh {
                        format!(
                            "签名所用公钥 {} 不是指定的公钥 {};这份文件不是该机关签发的",
                            sig.public_key,
                            k.trim()
                        )
                    } else {
                        format!(
                            "signed with public key {}, not the expected {}: the file was not signed by that office",
                            sig.public_key,
                            k.trim()
                        )
                    });
                }
            }
            (None, Some(_)) => out.push(if zh {
                "文件没有签名,无法确认由该机关签发".to_string()
            } else {
                "the file is not signed, so it cannot be shown to come from that office".to_string()
            }),
            (None, None) => {}
        }
        for it in &self.items {
            for f in verify_chain(it.id, &it.events, it.head_seq, &it.head_hash) {
                out.push(f.describe(it.id, lang));
            }
        }
        out
    }
}
