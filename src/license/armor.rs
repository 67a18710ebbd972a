//! The ASCII armour shared by licences, activation requests and usage reports, and the Ed25519
//! signing/verification over domain-separated messages.
//!
//! Layout (lines end in `\n` when written; `\r\n`, surrounding whitespace and blank lines are accepted):
//!
//! ```text
//! -----BEGIN <LABEL>-----
//! <Name>: <value>                 zero or more header lines (Key-Id, Instance-Key)
//! <standard base64 of the payload bytes, wrapped at 64 columns>
//! =
//! <standard base64 of the 64-byte signature, wrapped at 64 columns>
//! -----END <LABEL>-----
//! ```
//!
//! The signature covers `domain ++ payload bytes` — the decoded bytes, never the armour text — so
//! re-wrapping the base64 (or any other whitespace change inside it) does not affect verification,
//! while any change to the bytes does. A line that is exactly `=` separates payload from signature;
//! the last such line counts (well-formed base64 wrapped at a multiple of 4 columns never produces one).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ED25519};

use super::format::LicenseError;

/// Length of an Ed25519 signature.
pub(crate) const SIGNATURE_LEN: usize = 64;
/// Column at which base64 lines are wrapped.
const WRAP: usize = 64;

/// A decoded armour block.
#[derive(Debug)]
pub(crate) struct Armored {
    /// Header lines, `(name, value)`, in order.
    pub headers: Vec<(String, String)>,
    /// The exact signed payload bytes.
    pub payload: Vec<u8>,
    /// The 64-byte signature.
    pub signature: Vec<u8>,
    /// The armour as it appeared in the input, from the BEGIN marker to the END marker (line endings
    /// inside kept as they were).
    pub text: String,
}

impl Armored {
    /// The value of a header, matched case-insensitively; `None` if absent or empty.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// The message that is signed: `domain ++ payload`.
pub(crate) fn signed_message(domain: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(domain.len() + payload.len());
    message.extend_from_slice(domain);
    message.extend_from_slice(payload);
    message
}

/// Verifies an Ed25519 signature over `domain ++ payload`.
pub(crate) fn verify(
    public_key: &[u8],
    domain: &[u8],
    payload: &[u8],
    signature: &[u8],
) -> Result<(), LicenseError> {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&signed_message(domain, payload), signature)
        .map_err(|_| LicenseError::BadSignature)
}

fn begin_line(label: &str) -> String {
    format!("-----BEGIN {label}-----")
}

fn end_line(label: &str) -> String {
    format!("-----END {label}-----")
}

fn push_wrapped(out: &mut String, b64: &str) {
    let mut rest = b64;
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(WRAP));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
}

/// Writes an armour block.
pub(crate) fn encode(
    label: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
    signature: &[u8],
) -> String {
    let mut out = begin_line(label);
    out.push('\n');
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    }
    push_wrapped(&mut out, &STANDARD.encode(payload));
    out.push_str("=\n");
    push_wrapped(&mut out, &STANDARD.encode(signature));
    out.push_str(&end_line(label));
    out.push('\n');
    out
}

/// One input line: its byte range in the input and its content without surrounding whitespace.
struct Line<'a> {
    start: usize,
    end: usize,
    trimmed: &'a [u8],
}

fn lines(input: &[u8]) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in input.iter().enumerate() {
        if b == b'\n' {
            out.push(Line {
                start,
                end: i,
                trimmed: input[start..i].trim_ascii(),
            });
            start = i + 1;
        }
    }
    if start < input.len() {
        out.push(Line {
            start,
            end: input.len(),
            trimmed: input[start..].trim_ascii(),
        });
    }
    out
}

fn decode_base64(lines: &[Line<'_>], what: &'static str) -> Result<Vec<u8>, LicenseError> {
    let compact: Vec<u8> = lines
        .iter()
        .flat_map(|l| l.trimmed.iter().copied())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(&compact)
        .map_err(|_| LicenseError::BadEncoding(what))
}

/// Finds and decodes the armour block labelled `label` in `input`. Text before the BEGIN line and after
/// the END line is ignored. Does not verify the signature.
pub(crate) fn decode(
    input: &[u8],
    label: &'static str,
    limit: usize,
) -> Result<Armored, LicenseError> {
    if input.len() > limit {
        return Err(LicenseError::TooLarge {
            size: input.len(),
            limit,
        });
    }
    let begin = begin_line(label);
    let end = end_line(label);
    let all = lines(input);
    let begin_at = all
        .iter()
        .position(|l| l.trimmed == begin.as_bytes())
        .ok_or(LicenseError::NotArmoured { label })?;
    let end_offset = all[begin_at + 1..]
        .iter()
        .position(|l| l.trimmed == end.as_bytes())
        .ok_or(LicenseError::Truncated("the END line is missing"))?;
    let end_at = begin_at + 1 + end_offset;
    let inner = &all[begin_at + 1..end_at];

    // Header lines come first; base64 never contains ':'.
    let mut headers = Vec::new();
    let mut body_from = 0;
    for line in inner {
        if line.trimmed.is_empty() {
            body_from += 1;
            continue;
        }
        let Some(colon) = line.trimmed.iter().position(|&b| b == b':') else {
            break;
        };
        let name = std::str::from_utf8(&line.trimmed[..colon])
            .map_err(|_| LicenseError::BadEncoding("header"))?;
        let value = std::str::from_utf8(&line.trimmed[colon + 1..])
            .map_err(|_| LicenseError::BadEncoding("header"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
        body_from += 1;
    }
    let body = &inner[body_from..];
    let separator = body
        .iter()
        .rposition(|l| l.trimmed == b"=")
        .ok_or(LicenseError::Truncated(
            "the `=` line before the signature is missing",
        ))?;
    let payload_lines = &body[..separator];
    let signature_lines = &body[separator + 1..];
    if payload_lines.iter().all(|l| l.trimmed.is_empty()) {
        return Err(LicenseError::Truncated("the payload is missing"));
    }
    if signature_lines.iter().all(|l| l.trimmed.is_empty()) {
        return Err(LicenseError::Truncated("the signature is missing"));
    }
    let payload = decode_base64(payload_lines, "payload")?;
    let signature = decode_base64(signature_lines, "signature")?;
    if signature.len() != SIGNATURE_LEN {
        return Err(LicenseError::BadSignatureLength {
            len: signature.len(),
        });
    }
    let text = std::str::from_utf8(input[all[begin_at].start..all[end_at].end].trim_ascii())
        .map_err(|_| LicenseError::BadEncoding("armour text"))?
        .to_string();
    Ok(Armored {
        headers,
        payload,
        signature,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LABEL: &str = "ENCLAVE TEST";

    #[test]
    fn encode_then_decode_round_trips_and_wraps_at_64() {
        let payload = vec![7u8; 200];
        let signature = [9u8; 64];
        let text = encode(LABEL, &[("Key-Id", "k-1")], &payload, &signature);
        assert!(text
            .lines()
            .all(|l| l.len() <= 64 || l.starts_with("-----")));
        assert!(text.starts_with("-----BEGIN ENCLAVE TEST-----\nKey-Id: k-1\n"));
        assert!(text.ends_with("-----END ENCLAVE TEST-----\n"));
        let decoded = decode(text.as_bytes(), LABEL, 1 << 16).expect("decodes");
        assert_eq!(decoded.payload, payload);
        assert_eq!(decoded.signature, signature);
        assert_eq!(decoded.header("key-id"), Some("k-1"));
        assert_eq!(decoded.text, text.trim_end());
    }

    #[test]
    fn crlf_indentation_and_surrounding_text_are_tolerated() {
        let text = encode(LABEL, &[("Key-Id", "k-1")], b"hello", &[1u8; 64]);
        let mangled = format!(
            "\r\n  Here is your file:\r\n\r\n{}\r\n\r\n  \r\n",
            text.lines()
                .map(|l| format!("  {l} \t"))
                .collect::<Vec<_>>()
                .join("\r\n")
        );
        let decoded = decode(mangled.as_bytes(), LABEL, 1 << 16).expect("decodes");
        assert_eq!(decoded.payload, b"hello");
        assert!(decoded
            .text
            .starts_with("-----BEGIN ENCLAVE TEST----- \t\r\n  Key-Id"));
        assert!(decoded.text.ends_with("\r\n  -----END ENCLAVE TEST-----"));
    }

    #[test]
    fn rewrapped_base64_decodes_to_the_same_bytes() {
        let payload: Vec<u8> = (0..=255u8).collect();
        let text = encode(LABEL, &[], &payload, &[3u8; 64]);
        let b64 = STANDARD.encode(&payload);
        let rewrapped = b64
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        let wrapped64 = b64
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        let text = text.replace(&wrapped64, &rewrapped);
        let decoded = decode(text.as_bytes(), LABEL, 1 << 16).expect("decodes");
        assert_eq!(decoded.payload, payload);
    }
}
