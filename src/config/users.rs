//! User and group resolution through the passwd and group databases,
//! with supervisord's messages.

use nix::unistd::{Gid, Group, Uid};

use super::model::User;
use super::pyfmt::py_int;
use super::values::BadValue;

const USER_EXPECTED: &str = "an existing user name or uid";

/// supervisord's `name_to_uid`, keeping the account's primary gid and name.
pub fn resolve_user(spec: &str) -> Result<User, BadValue> {
    let entry = match py_int(spec) {
        Ok(n) => {
            let found = u32::try_from(n)
                .ok()
                .and_then(|uid| nix::unistd::User::from_uid(Uid::from_raw(uid)).ok().flatten());
            found.ok_or_else(|| BadValue::new(format!("Invalid user id {spec}"), USER_EXPECTED))?
        }
        Err(_) => nix::unistd::User::from_name(spec)
            .ok()
            .flatten()
            .ok_or_else(|| BadValue::new(format!("Invalid user name {spec}"), USER_EXPECTED))?,
    };
    Ok(User {
        spec: spec.to_string(),
        uid: entry.uid.as_raw(),
        gid: entry.gid.as_raw(),
        name: Some(entry.name),
    })
}

/// supervisord's `name_to_gid`.
fn resolve_group(spec: &str) -> Result<u32, String> {
    match py_int(spec) {
        Ok(n) => u32::try_from(n)
            .ok()
            .filter(|gid| Group::from_gid(Gid::from_raw(*gid)).ok().flatten().is_some())
            .ok_or_else(|| format!("Invalid group id {spec}")),
        Err(_) => Group::from_name(spec)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
            .ok_or_else(|| format!("Invalid group name {spec}")),
    }
}

/// supervisord's `colon_separated_user_group`: `user` or `user:group`
/// (names or ids) → `(uid, gid)`; a missing group is `None` (unchanged).
pub fn user_group(spec: &str) -> Result<(u32, Option<u32>), String> {
    let err = || format!("Invalid user:group definition {spec}");
    match spec.split_once(':') {
        None => Ok((resolve_user(spec).map_err(|_| err())?.uid, None)),
        Some((u, g)) => {
            let uid = resolve_user(u).map_err(|_| err())?.uid;
            let gid = resolve_group(g).map_err(|_| err())?;
            Ok((uid, Some(gid)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_root_and_nobody() {
        let root = resolve_user("root").unwrap();
        assert_eq!((root.uid, root.gid, root.name.as_deref()), (0, 0, Some("root")));
        let by_id = resolve_user("0").unwrap();
        assert_eq!(by_id.uid, 0);
        assert_eq!(by_id.spec, "0");
        let nobody = resolve_user("nobody").unwrap();
        assert_eq!(nobody.name.as_deref(), Some("nobody"));
    }

    #[test]
    fn unknown_users_are_errors() {
        assert_eq!(resolve_user("no_such_user_zz").unwrap_err().message, "Invalid user name no_such_user_zz");
        assert_eq!(resolve_user("4000000").unwrap_err().message, "Invalid user id 4000000");
    }

    #[test]
    fn user_group_pairs() {
        assert_eq!(user_group("root"), Ok((0, None)));
        assert_eq!(user_group("root:0"), Ok((0, Some(0))));
        assert_eq!(
            user_group("root:no_such_group_zz"),
            Err("Invalid user:group definition root:no_such_group_zz".to_string())
        );
    }
}
