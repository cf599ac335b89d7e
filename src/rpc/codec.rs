//! XML-RPC wire format: request decoding and response encoding.
//!
//! dxr decodes requests; responses are written by [`encode_response`], which
//! produces dxr's bytes for the value made safe by two rules Python's `xmlrpc.client` (and so
//! `supervisorctl`) depends on:
//!
//! * **Strings carry only characters XML 1.0 allows.** Control characters other
//!   than tab, newline and carriage return (`\x1b` from coloured logs, `\x00`),
//!   and the non-characters U+FFFE/U+FFFF, cannot appear in an XML document even
//!   as character references, so they are replaced by U+FFFD. Bytes that are not
//!   UTF-8 (log data) are decoded lossily to U+FFFD before they reach a
//!   [`Value`]; see [`text_from_bytes`]. supervisord sends such bytes raw, which
//!   makes the Python client fail to parse the whole response; replacing them
//!   keeps every other byte intact.
//! * **Integers fit in a signed 32-bit `<int>`.** supervisord never sends `<i8>`
//!   (Python refuses to marshal larger ints, and supervisord caps timestamps with
//!   `capped_int`), so every integer is clamped to the i32 range, as `capped_int`
//!   does.

use dxr::{FaultResponse, MethodCall, Value};

use crate::engine::Fault;

/// A decoded method call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Method name as sent (e.g. `supervisor.getState`).
    pub method: String,
    /// Parameters; empty when `<params>` is absent.
    pub params: Vec<Value>,
}

/// Why a request body could not be decoded; supervisord answers both with HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body is not UTF-8 or not a well-formed `<methodCall>`.
    #[error("XML-RPC request data is invalid: unmarshallable")]
    Unmarshallable,
    /// `<methodName>` is missing or empty.
    #[error("XML-RPC request data is invalid: no method name")]
    NoMethodName,
}

/// Decode a `<methodCall>` body.
pub fn decode_call(body: &[u8]) -> Result<Call, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::Unmarshallable)?;
    let call = MethodCall::from_xml(text).map_err(|_| DecodeError::Unmarshallable)?;
    let method = call.name.trim().to_string();
    if method.is_empty() {
        return Err(DecodeError::NoMethodName);
    }
    Ok(Call { method, params: call.params })
}

/// The XML declaration Python's `xmlrpc.client.dumps` writes; kept for byte-level likeness.
const XML_DECL: &str = "<?xml version='1.0'?>\n";

/// Encode a successful `<methodResponse>`, made safe on the way (see the module docs).
///
/// Written by hand rather than through dxr's serde path: a 1000-process
/// `getAllProcessInfo` spent most of its time there (a safe copy of the tree, the
/// serializer, two `<i4>` replaces). The bytes are the ones dxr writes, with
/// Python's `<int>`; the tests compare the two.
pub fn encode_response(value: Value) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(XML_DECL);
    out.push_str("<methodResponse><params><param>");
    if let Err(e) = write_value(&mut out, &value) {
        // Only the rare leaf types go through dxr; failing there is a serializer bug.
        return encode_fault(&Fault::new(crate::engine::FaultCode::Failed, e.to_string()));
    }
    out.push_str("</param></params></methodResponse>");
    out
}

/// Append one `<value>` (made safe) to `out`.
fn write_value(out: &mut String, value: &Value) -> Result<(), dxr::Error> {
    use std::fmt::Write;
    match value {
        Value::Integer(i) => {
            let _ = write!(out, "<value><int>{i}</int></value>");
        }
        Value::Long(l) => {
            let _ = write!(out, "<value><int>{}</int></value>", clamp_i32(*l));
        }
        Value::Boolean(b) => out.push_str(if *b {
            "<value><boolean>1</boolean></value>"
        } else {
            "<value><boolean>0</boolean></value>"
        }),
        Value::String(s) => {
            out.push_str("<value><string>");
            escape_text(out, s);
            out.push_str("</string></value>");
        }
        Value::Struct(members) => {
            out.push_str("<value><struct>");
            for (name, v) in members {
                out.push_str("<member><name>");
                escape_text(out, name);
                out.push_str("</name>");
                write_value(out, v)?;
                out.push_str("</member>");
            }
            out.push_str("</struct></value>");
        }
        Value::Array(items) => {
            out.push_str("<value><array><data>");
            for v in items {
                write_value(out, v)?;
            }
            out.push_str("</data></array></value>");
        }
        // Rare (nil, double, dateTime, base64): dxr's own rendering of the leaf.
        other => out.push_str(&other.to_xml()?),
    }
    Ok(())
}

/// Append `s` escaped as quick-xml's full quote level does (`<>&'"`, and CR as
/// `&#13;` so a parser does not normalise it away), with the
/// characters XML 1.0 cannot carry replaced by U+FFFD.
fn escape_text(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = first_to_escape(rest.as_bytes()) {
        out.push_str(&rest[..i]);
        let c = rest[i..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER);
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.push_str(rest);
}

/// Byte offset of the first character [`escape_text`] must rewrite. A byte scan:
/// everything to escape is ASCII except U+FFFE/U+FFFF (`EF BF BE`/`EF BF BF`);
/// a `&str` holds no surrogates, and UTF-8 continuation bytes are never ASCII.
fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    bytes.iter().enumerate().position(|(i, &b)| match b {
        b'<' | b'>' | b'&' | b'\'' | b'"' | b'\r' => true,
        b'\t' | b'\n' => false,
        0..=0x1f => true,
        0xef => bytes.get(i + 1) == Some(&0xbf) && matches!(bytes.get(i + 2), Some(0xbe | 0xbf)),
        _ => false,
    })
}

fn clamp_i32(i: i64) -> i32 {
    i.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Encode a `<fault>` response.
pub fn encode_fault(fault: &Fault) -> String {
    encode_raw_fault(fault.code as i32, &fault.text())
}

/// Encode a fault with an arbitrary code and text.
pub fn encode_raw_fault(code: i32, text: &str) -> String {
    let response = FaultResponse { fault: dxr::Fault::new(code, safe_text(text)) };
    match response.to_xml() {
        Ok(xml) => format!("{XML_DECL}{}", python_int_tags(&xml)),
        // Only reachable if the serializer itself breaks; a minimal hand-written fault keeps clients informed.
        Err(_) => format!(
            "{XML_DECL}<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>{code}</int></value></member><member><name>faultString</name><value><string>FAILED</string></value></member></struct></value></fault></methodResponse>"
        ),
    }
}

/// Write integers as `<int>` like Python's marshaller (dxr writes the equivalent `<i4>`).
/// A plain replace is safe: `<` inside text is always escaped, so only tags match.
fn python_int_tags(xml: &str) -> String {
    xml.replace("<i4>", "<int>").replace("</i4>", "</int>")
}

/// Whether XML 1.0 allows this character in a document.
fn xml_char_ok(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Replace characters XML 1.0 cannot carry with U+FFFD.
pub fn safe_text(s: &str) -> String {
    if s.chars().all(xml_char_ok) {
        return s.to_string();
    }
    s.chars().map(|c| if xml_char_ok(c) { c } else { char::REPLACEMENT_CHARACTER }).collect()
}

/// A string value from raw bytes (log data): invalid UTF-8 becomes U+FFFD.
pub fn text_from_bytes(bytes: &[u8]) -> Value {
    Value::String(safe_text(&String::from_utf8_lossy(bytes)))
}

/// A string value ([`encode_response`] replaces what XML cannot carry).
pub fn text(s: impl AsRef<str>) -> Value {
    Value::String(s.as_ref().to_owned())
}

/// An `<int>` value, clamped to the i32 range as supervisord's `capped_int`.
pub fn int(i: i64) -> Value {
    Value::Integer(clamp_i32(i))
}

/// Make a whole value tree safe for Python's parser (see the module docs): the
/// tests' reference for what [`encode_response`] writes.
#[cfg(test)]
fn make_safe(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(safe_text(&s)),
        Value::Long(l) => int(l),
        Value::Array(items) => Value::Array(items.into_iter().map(make_safe).collect()),
        Value::Struct(members) => {
            Value::Struct(members.into_iter().map(|(k, v)| (safe_text(&k), make_safe(v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_python_style_call() {
        let body = b"<?xml version='1.0'?>\n<methodCall>\n<methodName>supervisor.startProcess</methodName>\n<params>\n<param>\n<value><string>web</string></value>\n</param>\n<param>\n<value><boolean>0</boolean></value>\n</param>\n</params>\n</methodCall>\n";
        let call = decode_call(body).unwrap();
        assert_eq!(call.method, "supervisor.startProcess");
        assert_eq!(call.params, vec![Value::String("web".into()), Value::Boolean(false)]);
    }

    #[test]
    fn decodes_call_without_params_and_untyped_values() {
        let call = decode_call(b"<methodCall><methodName>a.b</methodName></methodCall>").unwrap();
        assert!(call.params.is_empty());
        let call = decode_call(
            b"<methodCall><methodName>a.b</methodName><params><param><value>x y</value></param></params></methodCall>",
        )
        .unwrap();
        assert_eq!(call.params, vec![Value::String("x y".into())]);
    }

    #[test]
    fn decodes_nil_and_i8() {
        let call = decode_call(
            b"<methodCall><methodName>a.b</methodName><params><param><value><nil/></value></param><param><value><i8>1099511627776</i8></value></param></params></methodCall>",
        )
        .unwrap();
        assert_eq!(call.params, vec![Value::Nil, Value::Long(1_099_511_627_776)]);
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        assert_eq!(decode_call(b"<methodCall><methodName>a"), Err(DecodeError::Unmarshallable));
        assert_eq!(decode_call(b"\xff\xfe"), Err(DecodeError::Unmarshallable));
        assert_eq!(decode_call(b""), Err(DecodeError::Unmarshallable));
        // Both decode errors become HTTP 400; which one an empty name gives does not matter.
        assert!(decode_call(b"<methodCall><methodName></methodName></methodCall>").is_err());
        assert!(decode_call(b"<methodCall><methodName> </methodName></methodCall>").is_err());
    }

    #[test]
    fn control_characters_become_replacement_chars() {
        assert_eq!(safe_text("a\x1b[31mb\x00c\td\ne\rf"), "a\u{FFFD}[31mb\u{FFFD}c\td\ne\rf");
        assert_eq!(safe_text("\u{FFFE}"), "\u{FFFD}");
        let v = text_from_bytes(b"ok \xff\xfe end\x07");
        assert_eq!(v, Value::String("ok \u{FFFD}\u{FFFD} end\u{FFFD}".into()));
        let xml = encode_response(Value::String("\x1b".into()));
        assert!(!xml.contains('\x1b'));
        assert!(xml.starts_with("<?xml version='1.0'?>\n<methodResponse>"));
    }

    /// The reference: dxr's serializer on the made-safe tree, with Python's `<int>`.
    fn dxr_encoding(value: Value) -> String {
        let xml = dxr::MethodResponse { value: make_safe(value) }.to_xml().expect("dxr serializes");
        format!("{XML_DECL}{}", python_int_tags(&xml))
    }

    #[test]
    fn hand_written_encoder_writes_dxr_bytes() {
        let mut inner = std::collections::BTreeMap::new();
        inner.insert("a<b>&'\"".to_string(), Value::String("x & y < z > 'q' \"w\"".into()));
        inner.insert("ctrl\x01".to_string(), Value::String("\x1b[1m\u{FFFE}\0 tab\t nl\n cr\r".into()));
        inner.insert("unicode".to_string(), Value::String("héllo ✓ 😀 \u{D7FF}\u{E000}".into()));
        inner.insert(
            "nonchars".to_string(),
            Value::String("\u{FFFF}\u{FFFD}\u{FFFC}\u{F000}\u{EFFF}\u{10FFFF}\x7f".into()),
        );
        inner.insert("empty".to_string(), Value::String(String::new()));
        inner.insert("nil".to_string(), Value::Nil);
        inner.insert("t".to_string(), Value::Boolean(true));
        inner.insert("f".to_string(), Value::Boolean(false));
        inner.insert("neg".to_string(), Value::Integer(-7));
        inner.insert("long".to_string(), Value::Long(-(1 << 40)));
        inner.insert("double".to_string(), Value::Double(1.5));
        inner.insert("b64".to_string(), Value::Base64(b"\x00bytes\xff".to_vec()));
        inner.insert("empty struct".to_string(), Value::Struct(Default::default()));
        inner.insert("empty array".to_string(), Value::Array(vec![]));
        let tree = Value::Array(vec![
            Value::Struct(inner),
            Value::Array(vec![Value::Integer(i32::MAX), Value::Long(1 << 33), Value::String("]]>".into())]),
            Value::String("plain".into()),
        ]);
        for v in [tree, Value::Boolean(true), Value::Nil, Value::String("&".into()), Value::Integer(0)] {
            assert_eq!(encode_response(v.clone()), dxr_encoding(v));
        }
    }

    #[test]
    fn big_integers_are_clamped_to_i32() {
        assert_eq!(int(1 << 40), Value::Integer(i32::MAX));
        assert_eq!(int(-(1 << 40)), Value::Integer(i32::MIN));
        assert_eq!(int(42), Value::Integer(42));
        let xml = encode_response(Value::Array(vec![Value::Long(1 << 33)]));
        assert!(xml.contains("2147483647"), "{xml}");
        assert!(!xml.contains("<i8>"));
    }

    #[test]
    fn struct_keys_are_made_safe_and_nil_survives() {
        let mut m = std::collections::BTreeMap::new();
        m.insert("k\x01".to_string(), Value::Nil);
        let Value::Struct(out) = make_safe(Value::Struct(m)) else { panic!("not a struct") };
        assert_eq!(out.get("k\u{FFFD}"), Some(&Value::Nil));
    }

    #[test]
    fn fault_encodes_code_and_string() {
        let xml = encode_fault(&Fault::new(crate::engine::FaultCode::BadName, "x<y"));
        assert!(xml.contains("<int>10</int>"), "{xml}");
        assert!(xml.contains("BAD_NAME: x&lt;y"), "{xml}");
    }
}
