//! Argument checking with supervisord's (Python's) leniency.
//!
//! supervisord calls methods as `func(*params)`: a wrong count is a `TypeError`,
//! reported as `INCORRECT_PARAMETERS`; values are then used the Python way
//! (`int(offset)` accepts `"5"`, `wait` is any truthy value). These helpers
//! reproduce that, and answer `INCORRECT_PARAMETERS` where Python would have
//! crashed with an internal error.

use dxr::Value;

use crate::engine::{Fault, FaultCode};

/// The parameters of one call.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a>(pub &'a [Value]);

/// `INCORRECT_PARAMETERS`.
pub fn incorrect() -> Fault {
    Fault::bare(FaultCode::IncorrectParameters)
}

impl<'a> Params<'a> {
    /// Require between `min` and `max` parameters (optional ones have defaults).
    pub fn arity(&self, min: usize, max: usize) -> Result<(), Fault> {
        if (min..=max).contains(&self.0.len()) {
            Ok(())
        } else {
            Err(incorrect())
        }
    }

    /// Parameter `i` as a string (strings and base64 as UTF-8).
    pub fn string(&self, i: usize) -> Result<String, Fault> {
        match self.0.get(i) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Base64(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
            _ => Err(incorrect()),
        }
    }

    /// Parameter `i` as an integer, as Python's `int()` would convert it.
    pub fn int(&self, i: usize) -> Result<i64, Fault> {
        match self.0.get(i) {
            Some(Value::Integer(n)) => Ok(i64::from(*n)),
            Some(Value::Long(n)) => Ok(*n),
            Some(Value::Boolean(b)) => Ok(i64::from(*b)),
            Some(Value::Double(d)) if d.is_finite() => Ok(d.trunc() as i64),
            Some(Value::String(s)) => s.trim().parse().map_err(|_| incorrect()),
            _ => Err(incorrect()),
        }
    }

    /// Parameter `i` with Python truthiness; `default` when absent (`wait=True`).
    pub fn truthy(&self, i: usize, default: bool) -> bool {
        match self.0.get(i) {
            None => default,
            Some(Value::Boolean(b)) => *b,
            Some(Value::Integer(n)) => *n != 0,
            Some(Value::Long(n)) => *n != 0,
            Some(Value::Double(d)) => *d != 0.0,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Base64(b)) => !b.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Struct(m)) => !m.is_empty(),
            Some(Value::Nil) => false,
            Some(_) => true,
        }
    }

    /// Parameter `i` as a signal spec: a name, or a number given as int or string.
    pub fn signal(&self, i: usize) -> Result<String, Fault> {
        match self.0.get(i) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Integer(n)) => Ok(n.to_string()),
            Some(Value::Long(n)) => Ok(n.to_string()),
            _ => Err(incorrect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arity_and_conversions() {
        let v = [Value::String("7".into()), Value::Integer(0), Value::Boolean(true)];
        let p = Params(&v);
        assert!(p.arity(3, 3).is_ok());
        assert_eq!(p.arity(1, 2).unwrap_err().code, FaultCode::IncorrectParameters);
        assert_eq!(p.int(0).unwrap(), 7);
        assert_eq!(p.int(2).unwrap(), 1);
        assert!(p.string(1).is_err());
        assert!(!p.truthy(1, true));
        assert!(p.truthy(5, true));
        assert_eq!(p.signal(1).unwrap(), "0");
        assert!(Params(&[Value::String("x".into())]).int(0).is_err());
    }
}
