//! What a member or an API key may do in an organization. Roles are
//! ordered: an owner may do all an admin may, an admin all an agent may.

use serde::{Deserialize, Serialize};

/// A role in one organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Conversations, leads and insights; reads bots and sources.
    Agent,
    /// Bots, sources, widget, webhooks, keys and conversations.
    Admin,
    /// Members, plan and everything else.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Admin, Role::Agent];

    /// The role as the API and the log write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// The role of API keys created before keys had roles: they could do
    /// everything, and keep that.
    pub fn of_older_keys() -> Role {
        Role::Owner
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`: expected owner, admin or agent"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Owner.allows(Role::Admin));
        assert!(Role::Admin.allows(Role::Agent));
        assert!(Role::Admin.allows(Role::Admin));
        assert!(!Role::Agent.allows(Role::Admin));
        assert!(!Role::Admin.allows(Role::Owner));
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_value(role).unwrap(), serde_json::json!(role.as_str()));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
