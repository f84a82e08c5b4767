//! [`AclSecurity`]: per-identity roles, for identities established in process.

use std::sync::RwLock;

use super::*;

/// Per-identity roles.
///
/// Remote callers authenticate with a bearer token. With no tokens registered the token is
/// the identity itself, as in v1 — anyone can claim any id, so use that only on a network
/// you trust. Once a token is registered with [`AclSecurity::add_token`], only registered
/// tokens authenticate (v1 had no secret at all, defect D14).
#[derive(Debug, Default)]
pub struct AclSecurity {
    roles: RwLock<std::collections::HashMap<String, Role>>,
    tokens: RwLock<std::collections::HashMap<String, String>>,
}

impl AclSecurity {
    /// An ACL from lists of ids per role (v1's `ACLSecurity(read, write, admin)`).
    pub fn new<S: AsRef<str>>(read: &[S], write: &[S], admin: &[S]) -> Self {
        let acl = Self::default();
        for (ids, role) in [
            (read, Role::Read),
            (write, Role::Write),
            (admin, Role::Admin),
        ] {
            for id in ids {
                acl.grant(id.as_ref(), role);
            }
        }
        acl
    }

    /// Grants `role` (and every lesser role) to `system_id`; a higher role already held stays.
    pub fn grant(&self, system_id: &str, role: Role) {
        let mut roles = self.roles.write().unwrap_or_else(|e| e.into_inner());
        let entry = roles.entry(system_id.to_owned()).or_insert(role);
        *entry = (*entry).max(role);
    }

    /// Grants a role given by name; unknown names are an error.
    pub fn grant_named(&self, system_id: &str, role: &str) -> Result<()> {
        self.grant(system_id, role.parse()?);
        Ok(())
    }

    /// Removes every right of `system_id`.
    pub fn revoke(&self, system_id: &str) {
        self.roles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(system_id);
    }

    /// Registers a secret bearer `token` for `system_id`; from then on only registered
    /// tokens authenticate.
    pub fn add_token(&self, token: impl Into<String>, system_id: impl Into<String>) {
        self.tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.into(), system_id.into());
    }

    /// The role of `system_id`, if any.
    pub fn role_of(&self, system_id: &str) -> Option<Role> {
        self.roles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(system_id)
            .copied()
    }
}

impl Security for AclSecurity {
    fn authenticate(&self, token: &str) -> Result<Principal> {
        if token.is_empty() {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "The token is empty.",
            ));
        }
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        if tokens.is_empty() {
            return Ok(Principal::local(token));
        }
        tokens
            .get(token)
            .map(|id| Principal::local(id.as_str()))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    "The token is not one this server issued.",
                )
            })
    }

    fn authorize(&self, principal: &Principal, channel_id: &str, op: Operation) -> bool {
        self.authorize_local(&principal.id, channel_id, op)
    }

    fn authorize_local(&self, id: &str, _: &str, op: Operation) -> bool {
        self.role_of(id).is_some_and(|r| r >= op.required_role())
    }

    fn generate_token(
        &self,
        system_id: &str,
        role: Role,
        _: Option<&[String]>,
        _: std::time::Duration,
    ) -> Result<String> {
        self.grant(system_id, role);
        Ok(system_id.to_owned())
    }

    fn name(&self) -> &'static str {
        "acl"
    }
}
