//! Secret API keys: `pk_` followed by 64 hex characters. Only the SHA-256 of
//! a key is stored; the key itself is shown once, at creation.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain_events;
use crate::error::DomainError;
use crate::event::Aggregate;
use crate::roles::Role;

pub const API_KEY_CREATED: &str = "api_key.created";
pub const API_KEY_REVOKED: &str = "api_key.revoked";

pub const KEY_PREFIX: &str = "pk_";

/// A freshly generated key. The plaintext lives only in this value.
pub struct GeneratedKey {
    pub plaintext: String,
    pub hash: String,
    /// `pk_` and the first 6 hex characters, safe to show in lists.
    pub display_prefix: String,
    pub last4: String,
}

impl GeneratedKey {
    pub fn generate() -> Self {
        let plaintext = crate::ids::random_token(KEY_PREFIX, 32);
        let hash = hash_key(&plaintext);
        let display_prefix = plaintext[..KEY_PREFIX.len() + 6].to_owned();
        let last4 = plaintext[plaintext.len() - 4..].to_owned();
        GeneratedKey {
            plaintext,
            hash,
            display_prefix,
            last4,
        }
    }
}

/// SHA-256 of the whole key string, hex-encoded: the only form stored.
pub fn hash_key(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

/// Whether a presented token has the shape of a secret key at all.
pub fn looks_like_key(token: &str) -> bool {
    token.len() == KEY_PREFIX.len() + 64
        && token.starts_with(KEY_PREFIX)
        && token[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    pub key_id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub last4: String,
    /// SHA-256 of the key. Never shown through the API or the event feed.
    pub hash: String,
    /// What the key may do (keys created before roles existed: owner).
    #[serde(default = "Role::of_older_keys")]
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRevoked {
    pub key_id: Uuid,
}

domain_events! {
    pub enum ApiKeyEvent {
        Created(ApiKeyCreated) = API_KEY_CREATED,
        Revoked(ApiKeyRevoked) = API_KEY_REVOKED,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiKeyState {
    pub created: Option<ApiKeyCreated>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub enum ApiKeyCommand {
    Create {
        key_id: Uuid,
        org_id: Uuid,
        name: String,
        key: KeyMaterial,
        role: Role,
        /// The role of whoever creates the key: a key never gets more.
        granted_by: Role,
    },
    Revoke {
        org_id: Uuid,
        /// The role of whoever revokes it: never a key of a higher role.
        revoked_by: Role,
    },
}

/// The stored parts of a generated key.
#[derive(Debug, Clone)]
pub struct KeyMaterial {
    pub prefix: String,
    pub last4: String,
    pub hash: String,
}

impl From<&GeneratedKey> for KeyMaterial {
    fn from(k: &GeneratedKey) -> Self {
        KeyMaterial {
            prefix: k.display_prefix.clone(),
            last4: k.last4.clone(),
            hash: k.hash.clone(),
        }
    }
}

pub struct ApiKey;

impl Aggregate for ApiKey {
    const STREAM_TYPE: &'static str = "api_key";
    type State = ApiKeyState;
    type Event = ApiKeyEvent;
    type Command = ApiKeyCommand;

    fn apply(state: &mut ApiKeyState, event: &ApiKeyEvent) {
        match event {
            ApiKeyEvent::Created(e) => state.created = Some(e.clone()),
            ApiKeyEvent::Revoked(_) => state.revoked = true,
        }
    }

    fn decide(state: &ApiKeyState, command: ApiKeyCommand) -> Result<Vec<ApiKeyEvent>, DomainError> {
        match command {
            ApiKeyCommand::Create {
                key_id,
                org_id,
                name,
                key,
                role,
                granted_by,
            } => {
                if state.created.is_some() {
                    return Err(DomainError::VersionConflict { expected: 0, actual: 1 });
                }
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err(DomainError::invalid("name", "must be 1 to 100 characters"));
                }
                if !granted_by.allows(role) {
                    return Err(DomainError::RoleTooHigh {
                        role,
                        yours: granted_by,
                    });
                }
                Ok(vec![ApiKeyEvent::Created(ApiKeyCreated {
                    key_id,
                    org_id,
                    name,
                    prefix: key.prefix,
                    last4: key.last4,
                    hash: key.hash,
                    role,
                })])
            }
            ApiKeyCommand::Revoke { org_id, revoked_by } => match &state.created {
                Some(created) if created.org_id == org_id => {
                    if !revoked_by.allows(created.role) {
                        return Err(DomainError::RoleTooHigh {
                            role: created.role,
                            yours: revoked_by,
                        });
                    }
                    if state.revoked {
                        // Revoking twice is harmless and records nothing new.
                        Ok(vec![])
                    } else {
                        Ok(vec![ApiKeyEvent::Revoked(ApiKeyRevoked { key_id: created.key_id })])
                    }
                }
                _ => Err(DomainError::ApiKeyNotFound),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let k = GeneratedKey::generate();
        assert!(looks_like_key(&k.plaintext), "{}", k.plaintext);
        assert_eq!(k.hash, hash_key(&k.plaintext));
        assert_eq!(k.hash.len(), 64);
        assert!(k.plaintext.starts_with(&k.display_prefix));
        assert!(k.plaintext.ends_with(&k.last4));
        assert_ne!(GeneratedKey::generate().plaintext, k.plaintext);
        assert!(!looks_like_key("pk_123"));
        assert!(!looks_like_key(&k.plaintext.to_uppercase()));
    }

    #[test]
    fn revoke_is_scoped_to_the_owning_org_and_idempotent() {
        let org = Uuid::now_v7();
        let key = GeneratedKey::generate();
        let created = ApiKey::decide(
            &ApiKeyState::default(),
            ApiKeyCommand::Create {
                key_id: Uuid::now_v7(),
                org_id: org,
                name: "ci".into(),
                key: (&key).into(),
                role: Role::Admin,
                granted_by: Role::Owner,
            },
        )
        .unwrap();
        let mut state = ApiKeyState::default();
        ApiKey::apply(&mut state, &created[0]);
        assert_eq!(
            ApiKey::decide(
                &state,
                ApiKeyCommand::Revoke {
                    org_id: Uuid::now_v7(),
                    revoked_by: Role::Owner
                }
            )
            .unwrap_err(),
            DomainError::ApiKeyNotFound
        );
        assert_eq!(
            ApiKey::decide(
                &state,
                ApiKeyCommand::Revoke {
                    org_id: org,
                    revoked_by: Role::Agent
                }
            )
            .unwrap_err(),
            DomainError::RoleTooHigh {
                role: Role::Admin,
                yours: Role::Agent
            },
            "an agent cannot revoke an admin's key"
        );
        let revoke = ApiKeyCommand::Revoke {
            org_id: org,
            revoked_by: Role::Admin,
        };
        let revoked = ApiKey::decide(&state, revoke.clone()).unwrap();
        assert_eq!(revoked.len(), 1);
        ApiKey::apply(&mut state, &revoked[0]);
        assert!(ApiKey::decide(&state, revoke).unwrap().is_empty());
    }

    #[test]
    fn keys_never_get_more_than_their_creator_and_old_keys_stay_owners() {
        let key = GeneratedKey::generate();
        let create = |role, granted_by| ApiKeyCommand::Create {
            key_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            name: "k".into(),
            key: (&key).into(),
            role,
            granted_by,
        };
        assert_eq!(
            ApiKey::decide(&ApiKeyState::default(), create(Role::Owner, Role::Admin)).unwrap_err(),
            DomainError::RoleTooHigh {
                role: Role::Owner,
                yours: Role::Admin
            }
        );
        assert!(ApiKey::decide(&ApiKeyState::default(), create(Role::Agent, Role::Admin)).is_ok());
        let old = serde_json::json!({"key_id": Uuid::now_v7(), "org_id": Uuid::now_v7(), "name": "old",
            "prefix": "pk_abcdef", "last4": "abcd", "hash": "00"});
        let created: ApiKeyCreated = serde_json::from_value(old).unwrap();
        assert_eq!(created.role, Role::Owner);
    }
}
