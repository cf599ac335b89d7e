//! Limits over D-Bus: `SetProgramLimits`' `a{sv}` and the limit properties.
//!
//! Keys are the config option names (`memory_max`, `memory_high`,
//! `memory_swap_max`, `cpu_quota`, `cpu_weight`, `io_weight`, `tasks_max`), values
//! are strings in config syntax (`512M`, `150%`, `infinity`) or plain numbers;
//! `max` or an empty string removes a limit. Values are parsed by
//! [`crate::config::values`], so D-Bus accepts exactly what a config file does.

use std::collections::HashMap;

use crate::config::values;
use crate::config::Limits;
use crate::engine::{Handle, NameSpec};
use zbus::{OwnedVariant, Variant};

use super::errors::{Error, Result};

/// A variant's value as config text: strings as they are, numbers in decimal.
fn text_of(key: &str, v: &Variant<'_>) -> Result<String> {
    Ok(match v {
        Variant::Str(s) => s.as_str().to_string(),
        Variant::U8(n) => n.to_string(),
        Variant::U16(n) => n.to_string(),
        Variant::I16(n) => n.to_string(),
        Variant::U32(n) => n.to_string(),
        Variant::I32(n) => n.to_string(),
        Variant::U64(n) => n.to_string(),
        Variant::I64(n) => n.to_string(),
        Variant::Variant(inner) => return text_of(key, inner),
        _ => return Err(bad(key, "expected a string or an integer")),
    })
}

fn bad(key: &str, why: &str) -> Error {
    Error::BadArguments(format!("BAD_ARGUMENTS: {key}: {why}"))
}

/// Apply one change to `limits`.
fn apply(limits: &mut Limits, key: &str, raw: &str) -> Result<()> {
    // A bare number over D-Bus means percent, as CPUQuotaPercent reads.
    let is_number = !raw.trim().is_empty() && raw.trim().bytes().all(|b| b.is_ascii_digit());
    let text = if key == "cpu_quota" && is_number { format!("{}%", raw.trim()) } else { raw.to_string() };
    values::set_limit(limits, key, &text).map_err(|e| Error::BadArguments(format!("BAD_ARGUMENTS: {e}")))
}

/// Apply `changes` on top of the limits in force, all or nothing.
pub fn updated(mut limits: Limits, changes: &HashMap<String, OwnedVariant>) -> Result<Limits> {
    let mut keys: Vec<&String> = changes.keys().collect();
    keys.sort();
    for key in keys {
        let raw = text_of(key, &changes[key])?;
        apply(&mut limits, key, &raw)?;
    }
    Ok(limits)
}

/// `SetProgramLimits`: read, update and write back a program's limits.
pub async fn set(h: &Handle, spec: &NameSpec, changes: &HashMap<String, OwnedVariant>) -> Result<()> {
    let current = h.limits(spec.clone()).await?;
    let new = updated(current, changes)?;
    h.set_limits(spec.clone(), new).await?;
    Ok(())
}

/// A byte or count limit as systemd shows it: `u64::MAX` means no limit.
pub fn or_infinity(v: Option<u64>) -> u64 {
    v.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(pairs: &[(&str, Variant<'static>)]) -> HashMap<String, OwnedVariant> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OwnedVariant::try_from(v.clone()).expect("owned")))
            .collect()
    }

    #[test]
    fn config_syntax_and_numbers_are_accepted() {
        let l = updated(
            Limits::default(),
            &changes(&[
                ("memory_max", Variant::from("64M")),
                ("cpu_quota", Variant::from(150u32)),
                ("tasks_max", Variant::from(32u64)),
                ("cpu_weight", Variant::from("200")),
            ]),
        )
        .expect("valid");
        assert_eq!(l.memory_max, Some(64 << 20));
        assert_eq!(l.cpu_quota, Some(150));
        assert_eq!(l.tasks_max, Some(32));
        assert_eq!(l.cpu_weight, Some(200));
        let l = updated(l, &changes(&[("memory_max", Variant::from("max"))])).expect("unset");
        assert_eq!(l.memory_max, None);
    }

    #[test]
    fn bad_keys_and_values_name_the_option() {
        let e = updated(Limits::default(), &changes(&[("memory_max", Variant::from("lots"))]));
        assert!(matches!(e, Err(Error::BadArguments(m)) if m.contains("memory_max")));
        let e = updated(Limits::default(), &changes(&[("colour", Variant::from("red"))]));
        assert!(matches!(e, Err(Error::BadArguments(m)) if m.contains("colour")));
    }
}
