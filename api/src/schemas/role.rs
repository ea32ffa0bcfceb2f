//! Roles as the API writes them.

use parley_domain::Role;
use poem_openapi::Enum;

/// A role in an organization: `owner` (members, plan, everything),
/// `admin` (bots, sources, widget, webhooks, keys, conversations) or
/// `agent` (conversations, leads, insights; reads bots and sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RoleName {
    Owner,
    Admin,
    Agent,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Role {
        match r {
            RoleName::Owner => Role::Owner,
            RoleName::Admin => Role::Admin,
            RoleName::Agent => Role::Agent,
        }
    }
}

impl From<Role> for RoleName {
    fn from(r: Role) -> RoleName {
        match r {
            Role::Owner => RoleName::Owner,
            Role::Admin => RoleName::Admin,
            Role::Agent => RoleName::Agent,
        }
    }
}

impl RoleName {
    /// A role stored as text; unknown text (never written) reads as the
    /// least role.
    pub fn stored(text: &str) -> RoleName {
        text.parse::<Role>().unwrap_or(Role::Agent).into()
    }
}
