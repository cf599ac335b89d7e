//! Reading the loosely typed XML-RPC answers corralctl gets back.
//!
//! supervisorctl reads answers the way Python does: a missing key or a string
//! where a number was expected is the server's problem, not a crash. These
//! helpers turn a [`Value`] into the shape a command needs, or a
//! [`CtlError::Shape`] naming what was wrong.

use std::collections::BTreeMap;

use dxr::Value;

use super::error::CtlError;

/// A decoded `<struct>`.
pub type Struct = BTreeMap<String, Value>;

/// The members of a struct answer.
pub fn into_struct(v: Value) -> Result<Struct, CtlError> {
    match v {
        Value::Struct(m) => Ok(m),
        other => Err(CtlError::Shape(format!("expected a struct, got {other:?}"))),
    }
}

/// The items of an array answer.
pub fn into_array(v: Value) -> Result<Vec<Value>, CtlError> {
    match v {
        Value::Array(a) => Ok(a),
        other => Err(CtlError::Shape(format!("expected an array, got {other:?}"))),
    }
}

/// An array of structs (getAllProcessInfo, result lists).
pub fn into_structs(v: Value) -> Result<Vec<Struct>, CtlError> {
    into_array(v)?.into_iter().map(into_struct).collect()
}

/// A value as Python's `str()` would print it.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Long(i) => i.to_string(),
        Value::Double(d) => format!("{d:?}"),
        Value::Boolean(b) => if *b { "True" } else { "False" }.to_string(),
        other => format!("{other:?}"),
    }
}

/// A value as an integer (ints, longs, doubles truncated, numeric strings, booleans).
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(i64::from(*i)),
        Value::Long(i) => Some(*i),
        Value::Double(d) => Some(*d as i64),
        Value::Boolean(b) => Some(i64::from(*b)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A value as a float.
pub fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Double(d) => Some(*d),
        Value::String(s) => s.trim().parse().ok(),
        other => int(other).map(|i| i as f64),
    }
}

/// Python truthiness of a value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Boolean(b) => *b,
        Value::Integer(i) => *i != 0,
        Value::Long(i) => *i != 0,
        Value::Double(d) => *d != 0.0,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Struct(m) => !m.is_empty(),
        _ => false,
    }
}

/// `m[key]` as text, or `""` when absent.
pub fn str_field(m: &Struct, key: &str) -> String {
    m.get(key).map(text).unwrap_or_default()
}

/// `m[key]` as an integer, or an error naming the key.
pub fn int_field(m: &Struct, key: &str) -> Result<i64, CtlError> {
    m.get(key).and_then(int).ok_or_else(|| CtlError::Shape(format!("missing integer '{key}'")))
}
