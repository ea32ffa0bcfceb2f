//! Who may call an operation: secret API keys and members' sessions (with their roles), bots' site keys, and
//! visitors' conversation tokens.

pub mod api_key;
pub mod caller;
pub mod conversation_token;
pub mod passwords;
pub mod session;
pub mod site_key;

pub use api_key::ApiKeyAuth;
pub use caller::{AdminAuth, AgentAuth, OwnerAuth};
pub use session::SessionAuth;
pub use site_key::SiteKeyAuth;
