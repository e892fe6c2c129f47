//! `GET /api/appconnection`: the OctoEverywhere App Connection registration
//! state of every printer with an `app_token` (docs/http-api.md#app-connection), callback URLs
//! redacted.

use http::StatusCode;

use super::Shared;
use super::reply::{self, Reply};

/// Every printer's registration status, by printer id.
pub fn list(shared: &Shared) -> Reply {
    // Plain strings, numbers and lists: serializing cannot fail.
    let list = serde_json::to_value(shared.registrations.list()).unwrap_or_default();
    reply::json(StatusCode::OK, &list)
}
