//! Secret API keys: `pk_` followed by 64 hex characters. Only the SHA-256 of
//! a key is stored; the key itself is shown once, at creation.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain_events;
use crate::error::DomainError;
use crate::event::Aggregate;

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
    },
    Revoke {
        org_id: Uuid,
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
            } => {
                if state.created.is_some() {
                    return Err(DomainError::VersionConflict { expected: 0, actual: 1 });
                }
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err(DomainError::invalid("name", "must be 1 to 100 characters"));
                }
                Ok(vec![ApiKeyEvent::Created(ApiKeyCreated {
                    key_id,
                    org_id,
                    name,
                    prefix: key.prefix,
                    last4: key.last4,
                    hash: key.hash,
                })])
            }
            ApiKeyCommand::Revoke { org_id } => match &state.created {
                Some(created) if created.org_id == org_id => {
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
            },
        )
        .unwrap();
        let mut state = ApiKeyState::default();
        ApiKey::apply(&mut state, &created[0]);
        assert_eq!(
            ApiKey::decide(&state, ApiKeyCommand::Revoke { org_id: Uuid::now_v7() }).unwrap_err(),
            DomainError::ApiKeyNotFound
        );
        let revoked = ApiKey::decide(&state, ApiKeyCommand::Revoke { org_id: org }).unwrap();
        assert_eq!(revoked.len(), 1);
        ApiKey::apply(&mut state, &revoked[0]);
        assert!(
            ApiKey::decide(&state, ApiKeyCommand::Revoke { org_id: org })
                .unwrap()
                .is_empty()
        );
    }
}
