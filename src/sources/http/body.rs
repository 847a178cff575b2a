//! What an ingest request body may be before it is decoded: its `Content-Type`, its
//! `Content-Encoding` (gzip, deflate, zstd, decoded here under the body limit), and the
//! answers when it is not acceptable (415, 413).
//!
//! - **Content-Type**: JSON (`application/json`, any `application/*+json` such as
//!   `application/cloudevents+json`), NDJSON (`application/x-ndjson`,
//!   `application/ndjson`, `application/jsonl`, `application/x-jsonlines`). A missing
//!   content type — or the defaults of generic clients that did not choose one
//!   (`text/plain`, `application/x-www-form-urlencoded` as `curl -d` sends,
//!   `application/octet-stream`) — is read as JSON too: the body is sniffed (envelope,
//!   CloudEvent, KServe, plain rows). Anything else (`application/xml`, `text/csv`, …) is
//!   answered 415 naming the accepted types.
//! - **Content-Encoding**: `gzip` (`x-gzip`), `deflate` (zlib-wrapped as HTTP says, or raw
//!   deflate), `zstd`, `identity`, and lists of them (decoded last-applied first).
//!   Anything else is answered 415 with the supported list (and `Accept-Encoding`).
//!   Decoding streams from the received bytes into a buffer that may not grow past the
//!   body limit: the limit applies to the received and to the decoded size, so a small
//!   body that inflates beyond it (a zip bomb) is answered 413 after reading at most the
//!   limit plus one byte of output.

use std::io::Read;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

use super::error;

/// Content codings the ingest decodes.
pub const SUPPORTED_ENCODINGS: &str = "gzip, deflate, zstd";

/// Media types the ingest accepts (besides any `application/*+json`).
pub const ACCEPTED_TYPES: &[&str] = &[
    "application/json",
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
];

/// Generic clients' default types, read like a missing content type (sniffed as JSON).
const UNSPECIFIED_TYPES: &[&str] = &[
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
];

/// One content coding of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// gzip (RFC 1952), also `x-gzip`; concatenated members are read as one stream.
    Gzip,
    /// deflate: zlib (RFC 1950) as HTTP specifies, or raw deflate (RFC 1951) as some
    /// clients send.
    Deflate,
    /// Zstandard (RFC 8878).
    Zstd,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Zstd => "zstd",
        }
    }
}

/// A 415 answer.
fn unsupported(message: String, accept_encoding: bool) -> Response {
    let mut r = error(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
    if accept_encoding {
        r.headers_mut().insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static(SUPPORTED_ENCODINGS),
        );
    }
    r
}

/// Checks the `Content-Type` header; the error is the 415 answer.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let media = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json_suffix = media.starts_with("application/") && media.ends_with("+json");
    if media.is_empty()
        || ACCEPTED_TYPES.contains(&media.as_str())
        || json_suffix
        || UNSPECIFIED_TYPES.contains(&media.as_str())
    {
        return Ok(());
    }
    Err(Box::new(unsupported(
        format!(
            "unsupported Content-Type {text:?}: the ingest takes JSON or NDJSON ({}, or any \
             application/*+json); leave the header out to have the body read as JSON",
            ACCEPTED_TYPES.join(", ")
        ),
        false,
    )))
}

/// The codings of the `Content-Encoding` header in the order they were applied; the
/// error is the 415 answer.
pub fn content_codings(headers: &HeaderMap) -> Result<Vec<Coding>, Box<Response>> {
    let mut codings = Vec::new();
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("(not text)");
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            codings.push(match token.to_ascii_lowercase().as_str() {
                "identity" => continue,
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                "zstd" => Coding::Zstd,
                _ => {
                    return Err(Box::new(unsupported(
                        format!(
                            "unsupported Content-Encoding '{token}': the ingest decodes \
                             {SUPPORTED_ENCODINGS} (or identity)"
                        ),
                        true,
                    )))
                }
            });
        }
    }
    Ok(codings)
}

/// A byte count for people: `16 MiB`, `1.5 MiB`, `64 KiB`, `100 bytes`.
pub fn human_size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    const GIB: usize = 1024 * MIB;
    let scaled = |unit: usize, name: &str| {
        if bytes.is_multiple_of(unit) {
            format!("{} {name}", bytes / unit)
        } else {
            format!("{:.1} {name}", bytes as f64 / unit as f64)
        }
    };
    match bytes {
        b if b >= GIB => scaled(GIB, "GiB"),
        b if b >= MIB => scaled(MIB, "MiB"),
        b if b >= KIB => scaled(KIB, "KiB"),
        b => format!("{b} bytes"),
    }
}

/// The 413 answer for a body over `limit`; `decoded` names the content codings when it
/// was the decoded size that went over.
pub fn too_large(limit: usize, decoded: Option<&[Coding]>) -> Response {
    let what = match decoded {
        Some(codings) => format!(
            "the request body, decoded from Content-Encoding {}, is larger than",
            codings
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "the request body is larger than".to_string(),
    };
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "{what} the ingest body limit of {limit} bytes ({}); the limit applies to the \
             received and to the decoded size; split the body, or raise the limit with \
             --http-body-limit",
            human_size(limit)
        ),
    )
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The decoded body is larger than the limit (answered 413).
    #[error("decoded body is larger than {0} bytes")]
    TooLarge(usize),
    /// The bytes are not valid for their coding (answered 400).
    #[error("{0}")]
    Corrupt(String),
}

/// Undoes `codings` (in the order they were applied) on `body`, producing at most `limit`
/// bytes. Streams: nothing larger than `limit + 1` bytes of output is ever held.
pub fn decode_body(body: &[u8], codings: &[Coding], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut data = std::borrow::Cow::Borrowed(body);
    for coding in codings.iter().rev() {
        let reader: Box<dyn Read + '_> = match coding {
            Coding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&data[..])),
            Coding::Deflate if is_zlib(&data) => {
                Box::new(flate2::read::ZlibDecoder::new(&data[..]))
            }
            Coding::Deflate => Box::new(flate2::read::DeflateDecoder::new(&data[..])),
            Coding::Zstd => Box::new(
                zstd::stream::read::Decoder::new(&data[..])
                    .map_err(|e| DecodeError::Corrupt(format!("zstd: {e}")))?,
            ),
        };
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit + 1));
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                DecodeError::Corrupt(format!(
                    "the body is not valid {} data (Content-Encoding): {e}",
                    coding.name()
                ))
            })?;
        if out.len() > limit {
            return Err(DecodeError::TooLarge(limit));
        }
        data = std::borrow::Cow::Owned(out);
    }
    Ok(data.into_owned())
}

/// Whether `data` starts with a zlib header (RFC 1950: method 8, check bits).
fn is_zlib(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_every_coding_and_stacks() {
        let text = b"{\"x\": 1}\n".repeat(100);
        assert_eq!(
            decode_body(&gzip(&text), &[Coding::Gzip], 10_000).unwrap(),
            text
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&text).unwrap();
        let zlib = z.finish().unwrap();
        assert_eq!(
            decode_body(&zlib, &[Coding::Deflate], 10_000).unwrap(),
            text
        );
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        d.write_all(&text).unwrap();
        let raw = d.finish().unwrap();
        assert_eq!(decode_body(&raw, &[Coding::Deflate], 10_000).unwrap(), text);
        let zst = zstd::encode_all(&text[..], 3).unwrap();
        assert_eq!(decode_body(&zst, &[Coding::Zstd], 10_000).unwrap(), text);
        // gzip applied first, then zstd: decoded zstd first.
        let both = zstd::encode_all(&gzip(&text)[..], 1).unwrap();
        assert_eq!(
            decode_body(&both, &[Coding::Gzip, Coding::Zstd], 10_000).unwrap(),
            text
        );
    }

    #[test]
    fn limit_applies_to_the_decoded_size() {
        let text = vec![b' '; 10_001];
        assert!(matches!(
            decode_body(&gzip(&text), &[Coding::Gzip], 10_000),
            Err(DecodeError::TooLarge(10_000))
        ));
        assert_eq!(
            decode_body(&gzip(&text), &[Coding::Gzip], 10_001)
                .unwrap()
                .len(),
            10_001
        );
        assert!(matches!(
            decode_body(b"not gzip", &[Coding::Gzip], 100),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn sizes_and_headers() {
        assert_eq!(human_size(16 * 1024 * 1024), "16 MiB");
        assert_eq!(human_size(1536 * 1024), "1.5 MiB");
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(100), "100 bytes");
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static("gzip, identity, zstd"),
        );
        assert_eq!(
            content_codings(&h).unwrap(),
            vec![Coding::Gzip, Coding::Zstd]
        );
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(content_codings(&h).unwrap_err().status(), 415);
        for ok in [
            "application/json; charset=utf-8",
            "application/x-ndjson",
            "text/plain",
            "application/vnd.x+json",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ok));
            assert!(check_content_type(&h).is_ok(), "{ok}");
        }
        for bad in ["application/xml", "text/csv", "application/protobuf"] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(bad));
            assert_eq!(check_content_type(&h).unwrap_err().status(), 415, "{bad}");
        }
    }
}
