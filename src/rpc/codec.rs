//! XML-RPC wire format: request decoding and response encoding.
//!
//! dxr is used only as the value codec. Everything that goes out passes through
//! [`make_safe`], which enforces two rules Python's `xmlrpc.client` (and so
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

use dxr::{FaultResponse, MethodCall, MethodResponse, Value};

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

/// Encode a successful `<methodResponse>` (the value is made safe first).
pub fn encode_response(value: Value) -> String {
    let response = MethodResponse { value: make_safe(value) };
    match response.to_xml() {
        Ok(xml) => format!("{XML_DECL}{}", python_int_tags(&xml)),
        // Serialising a tree of safe values cannot fail; answer a fault rather than panic.
        Err(e) => encode_fault(&Fault::new(crate::engine::FaultCode::Failed, e.to_string())),
    }
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

/// A string value.
pub fn text(s: impl AsRef<str>) -> Value {
    Value::String(safe_text(s.as_ref()))
}

/// An `<int>` value, clamped to the i32 range as supervisord's `capped_int`.
pub fn int(i: i64) -> Value {
    Value::Integer(i.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
}

/// Make a whole value tree safe for Python's parser (see the module docs).
pub fn make_safe(value: Value) -> Value {
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
