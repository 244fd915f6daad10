//! Turns the bytes of a text file (a CSV ledger, a document) into UTF-8 text.
//!
//! Offices send CSV files saved by Excel or WPS: UTF-8 with a byte-order mark, UTF-8 without
//! one, or GBK (the default "ANSI" code page of Chinese Windows). [`decode`] takes UTF-8 when the
//! bytes are valid UTF-8 and GBK otherwise; bytes that are neither are refused with the offset of
//! the first byte that fails, so the office can find the damage.

use serde::Serialize;

/// The encoding a file was read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Utf8,
    /// UTF-8 with a leading byte-order mark (as Excel writes "CSV UTF-8").
    Utf8Bom,
    /// GBK (GB 18030 decoder, which reads every GBK file).
    Gbk,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Utf8Bom => "utf-8 (BOM)",
            Encoding::Gbk => "gbk",
        }
    }
}

/// The encoding the caller asks for, or `Auto` to detect it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wanted {
    #[default]
    Auto,
    Utf8,
    Gbk,
}

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not valid UTF-8 (at `utf8_offset`) and not valid GBK either (at `gbk_offset`).
    #[error(
        "the file is neither UTF-8 (invalid byte at offset {utf8_offset}) nor GBK (invalid byte at offset {gbk_offset}): save it again as CSV UTF-8"
    )]
    Neither {
        utf8_offset: usize,
        gbk_offset: usize,
    },
    /// The encoding was given and the bytes are not valid in it.
    #[error("the file is not valid {encoding} (invalid byte at offset {offset})")]
    Invalid {
        encoding: &'static str,
        offset: usize,
    },
}

impl DecodeError {
    /// The message in Chinese (`zh = true`) or English.
    pub fn message(&self, zh: bool) -> String {
        if !zh {
            return self.to_string();
        }
        match self {
            DecodeError::Neither {
                utf8_offset,
                gbk_offset,
            } => format!(
                "文件既不是 UTF-8 编码(第 {utf8_offset} 字节处无效),也不是 GBK 编码(第 {gbk_offset} 字节处无效);请在 Excel/WPS 中另存为“CSV UTF-8”后重试"
            ),
            DecodeError::Invalid { encoding, offset } => {
                format!("文件不是有效的 {encoding} 编码(第 {offset} 字节处无效)")
            }
        }
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes `bytes` as asked. Byte offsets in errors are 0-based from the start of the file.
pub fn decode(bytes: &[u8], wanted: Wanted) -> Result<(String, Encoding), DecodeError> {
    match wanted {
        Wanted::Utf8 => utf8(bytes).map_err(|offset| DecodeError::Invalid {
            encoding: "UTF-8",
            offset,
        }),
        Wanted::Gbk => {
            gbk(bytes)
                .map(|s| (s, Encoding::Gbk))
                .map_err(|offset| DecodeError::Invalid {
                    encoding: "GBK",
                    offset,
                })
        }
        Wanted::Auto => match utf8(bytes) {
            Ok(ok) => Ok(ok),
            Err(utf8_offset) => match gbk(bytes) {
                Ok(s) => Ok((s, Encoding::Gbk)),
                Err(gbk_offset) => Err(DecodeError::Neither {
                    utf8_offset,
                    gbk_offset,
                }),
            },
        },
    }
}

fn utf8(bytes: &[u8]) -> Result<(String, Encoding), usize> {
    let (body, enc, skip) = match bytes.strip_prefix(BOM) {
        Some(rest) => (rest, Encoding::Utf8Bom, BOM.len()),
        None => (bytes, Encoding::Utf8, 0),
    };
    match std::str::from_utf8(body) {
        Ok(s) => Ok((s.to_string(), enc)),
        Err(e) => Err(skip + e.valid_up_to()),
    }
}

/// GBK via the GB 18030 decoder, without replacement: the offset of the first malformed byte.
fn gbk(bytes: &[u8]) -> Result<String, usize> {
    let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(bytes.len() * 3 / 2 + 16);
    let mut read = 0;
    loop {
        let (result, n) =
            decoder.decode_to_string_without_replacement(&bytes[read..], &mut out, true);
        read += n;
        match result {
            encoding_rs::DecoderResult::InputEmpty => return Ok(out),
            encoding_rs::DecoderResult::OutputFull => {
                out.reserve(bytes.len() - read + 16);
            }
            encoding_rs::DecoderResult::Malformed(bad, consumed_after) => {
                // `read` is just past the malformed sequence and the bytes consumed after it.
                let offset = read - usize::from(consumed_after) - usize::from(bad);
                return Err(offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom() {
        assert_eq!(
            decode("序号,问题".as_bytes(), Wanted::Auto).unwrap(),
            ("序号,问题".to_string(), Encoding::Utf8)
        );
        let mut b = BOM.to_vec();
        b.extend_from_slice("序号".as_bytes());
        assert_eq!(
            decode(&b, Wanted::Auto).unwrap(),
            ("序号".to_string(), Encoding::Utf8Bom)
        );
    }

    #[test]
    fn gbk_is_detected() {
        let (bytes, _, _) = encoding_rs::GBK.encode("序号,牵头单位\n1,区发改局");
        assert!(std::str::from_utf8(&bytes).is_err());
        assert_eq!(
            decode(&bytes, Wanted::Auto).unwrap(),
            ("序号,牵头单位\n1,区发改局".to_string(), Encoding::Gbk)
        );
        assert_eq!(decode(&bytes, Wanted::Gbk).unwrap().1, Encoding::Gbk);
        assert!(matches!(
            decode(&bytes, Wanted::Utf8),
            Err(DecodeError::Invalid { offset: 0, .. })
        ));
    }

    #[test]
    fn neither_names_the_offsets() {
        // "ab" then 0xFF: invalid as the first byte in UTF-8 and in GBK.
        let bytes = b"ab\xFFcd";
        assert_eq!(
            decode(bytes, Wanted::Auto),
            Err(DecodeError::Neither {
                utf8_offset: 2,
                gbk_offset: 2
            })
        );
        let msg = decode(bytes, Wanted::Auto).unwrap_err().message(true);
        assert!(msg.contains("第 2 字节"), "{msg}");
    }
}
