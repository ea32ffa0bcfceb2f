//! Who may call an operation: secret API keys, bots' site keys, and
//! visitors' conversation tokens.

pub mod api_key;
pub mod conversation_token;
pub mod site_key;

pub use api_key::ApiKeyAuth;
pub use site_key::SiteKeyAuth;
